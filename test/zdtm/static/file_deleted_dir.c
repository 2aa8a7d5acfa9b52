// zdtm: desc: a deleted file inside a deleted directory (two levels gone): content, offset, link count 0 and "(deleted)" name kept; the directories are not left behind
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#define LEN 5000

int main(int argc, char **argv)
{
	unsigned char buf[LEN];
	char link[512], path[64];
	struct stat st;
	int fd;

	zt_init(argc, argv);
	if (mkdir("gone", 0755) || mkdir("gone/deeper", 0700))
		return 1;
	fd = open("gone/deeper/file.dat", O_RDWR | O_CREAT | O_TRUNC, 0604);
	zt_pattern_fill(buf, LEN, 23);
	if (fd < 0 || write(fd, buf, LEN) != LEN)
		return 1;
	lseek(fd, 100, SEEK_SET);
	if (unlink("gone/deeper/file.dat") || rmdir("gone/deeper") || rmdir("gone"))
		return 1;
	zt_ready();
	zt_wait_term();
	if (fstat(fd, &st) || st.st_size != LEN || st.st_nlink != 0 || (st.st_mode & 07777) != 0604)
		zt_fail("file.dat: size %ld nlink %ld mode 0%o", (long)st.st_size, (long)st.st_nlink, st.st_mode & 07777);
	if (lseek(fd, 0, SEEK_CUR) != 100)
		zt_fail("file.dat offset %ld, want 100", (long)lseek(fd, 0, SEEK_CUR));
	memset(buf, 0, LEN);
	if (pread(fd, buf, LEN, 0) != LEN)
		zt_fail("file.dat: short read");
	zt_pattern_expect("file.dat content", buf, LEN, 23);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!strstr(link, "/gone/deeper/file.dat (deleted)"))
		zt_fail("fd %d links to %s", fd, link);
	if (access("gone", F_OK) == 0 || errno != ENOENT)
		zt_fail("directory gone exists again after restore");
	return zt_finish();
}
