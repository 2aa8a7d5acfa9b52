// zdtm: desc: an fd on a removed directory (open O_DIRECTORY, then rmdir): after restore it is a directory with link count 0, getdents64 and creating in it fail with ENOENT, mode kept
// zdtm: modes: restore snapshot twice predump criu-dump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	char buf[4096], link[512], path[64];
	struct stat st;
	int fd;

	zt_init(argc, argv);
	if (mkdir("removed dir", 0751))
		return 1;
	fd = open("removed dir", O_RDONLY | O_DIRECTORY);
	if (fd < 0 || rmdir("removed dir"))
		return 1;
	zt_ready();
	zt_wait_term();
	if (fstat(fd, &st) || !S_ISDIR(st.st_mode) || st.st_nlink != 0 || (st.st_mode & 07777) != 0751)
		zt_fail("fd: mode 0%o nlink %ld, want a directory 0751 with nlink 0", st.st_mode, (long)st.st_nlink);
	/* The kernel lists nothing in a dead directory: getdents64 fails with ENOENT. */
	errno = 0;
	long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
	if (n != -1 || errno != ENOENT)
		zt_fail("getdents64 on the removed directory returned %ld errno %d, want -1 ENOENT", n, errno);
	int c = openat(fd, "new", O_CREAT | O_RDWR, 0600);
	if (c >= 0 || errno != ENOENT)
		zt_fail("openat(O_CREAT) in the removed directory: fd %d errno %d, want ENOENT", c, errno);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t l = readlink(path, link, sizeof(link) - 1);
	link[l > 0 ? l : 0] = 0;
	if (!strstr(link, "/removed dir (deleted)"))
		zt_fail("fd %d links to %s", fd, link);
	if (access("removed dir", F_OK) == 0)
		zt_fail("removed dir exists again after restore");
	return zt_finish();
}
