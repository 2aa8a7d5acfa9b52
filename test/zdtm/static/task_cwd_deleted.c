// zdtm: desc: a working directory that was removed: after restore /proc/self/cwd ends in " (deleted)", getcwd fails with ENOENT, the directory has link count 0 and its mode, and creating in it fails with ENOENT
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	char buf[4096], top[4096];
	struct stat st;

	zt_init(argc, argv);
	if (!getcwd(top, sizeof(top)) || mkdir("cwd gone", 0705) || chdir("cwd gone") || rmdir("../cwd gone"))
		return 1;
	zt_ready();
	zt_wait_term();
	if (getcwd(buf, sizeof(buf)) || errno != ENOENT)
		zt_fail("getcwd: %s, errno %d; want ENOENT", buf, errno);
	ssize_t n = readlink("/proc/self/cwd", buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	snprintf(top + strlen(top), sizeof(top) - strlen(top), "/cwd gone (deleted)");
	if (strcmp(buf, top))
		zt_fail("/proc/self/cwd is %s, want %s", buf, top);
	if (stat(".", &st) || !S_ISDIR(st.st_mode) || st.st_nlink != 0 || (st.st_mode & 07777) != 0705)
		zt_fail(".: mode 0%o nlink %ld, want a directory 0705 with nlink 0", st.st_mode, (long)st.st_nlink);
	int c = open("new", O_CREAT | O_RDWR, 0600);
	if (c >= 0 || errno != ENOENT)
		zt_fail("creating in the removed cwd: fd %d errno %d, want ENOENT", c, errno);
	return zt_finish();
}
