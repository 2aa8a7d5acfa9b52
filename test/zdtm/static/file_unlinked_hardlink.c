// zdtm: desc: a file unlinked while another hard link names it (open a, link a b, unlink a): after restore the fd is the same inode as b (write through the fd, read through b), offset and content kept, and no link is left behind
// zdtm: modes: restore snapshot twice predump criu-restore criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	char buf[64], name[512], path[64];
	struct stat fst, bst;
	int fd;

	zt_init(argc, argv);
	if (mkdir("d", 0700))
		return 1;
	fd = open("d/a", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "hello, world", 12) != 12 || link("d/a", "b") || unlink("d/a"))
		return 1;
	lseek(fd, 7, SEEK_SET);
	zt_ready();
	zt_wait_term();
	if (fstat(fd, &fst) || stat("b", &bst))
		zt_fail("stat: %m");
	else if (fst.st_ino != bst.st_ino || fst.st_dev != bst.st_dev)
		zt_fail("fd is inode %lu, b is inode %lu: not the same file", (unsigned long)fst.st_ino, (unsigned long)bst.st_ino);
	if (fst.st_nlink != 1)
		zt_fail("nlink %ld, want 1 (b alone)", (long)fst.st_nlink);
	if (lseek(fd, 0, SEEK_CUR) != 7)
		zt_fail("offset %ld, want 7", (long)lseek(fd, 0, SEEK_CUR));
	if (write(fd, "there", 5) != 5)
		zt_fail("write through the fd: %m");
	int b = open("b", O_RDONLY);
	memset(buf, 0, sizeof(buf));
	if (b < 0 || read(b, buf, sizeof(buf)) != 12 || strcmp(buf, "hello, there"))
		zt_fail("b reads \"%s\", want \"hello, there\"", buf);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, name, sizeof(name) - 1);
	name[n > 0 ? n : 0] = 0;
	if (!strstr(name, " (deleted)"))
		zt_fail("fd %d links to %s, want a deleted name", fd, name);
	DIR *dir = opendir("d");
	struct dirent *e;
	while (dir && (e = readdir(dir)))
		if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")))
			zt_fail("d holds %s after restore", e->d_name);
	return zt_finish();
}
