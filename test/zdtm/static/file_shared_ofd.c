// zdtm: desc: open file descriptions of one file: an O_WRONLY|O_APPEND writer and an O_RDONLY reader opened separately (what one writes the other reads), the same for a file deleted since (one inode after restore), a dup and a fork-inherited fd sharing one description and its offset (kcmp KCMP_FILE equal), separate opens with their own offsets
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int kcmp_file(pid_t p1, pid_t p2, int fd1, int fd2)
{
	return syscall(SYS_kcmp, p1, p2, KCMP_FILE, fd1, fd2);
}

int main(int argc, char **argv)
{
	int wr, rd, rw, dupd, inh, other, gw, gr, st, p[2], q[2];
	char buf[64];
	pid_t child, me;

	zt_init(argc, argv);
	me = getpid();
	wr = open("log", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0644);
	rd = open("log", O_RDONLY);
	if (wr < 0 || rd < 0 || write(wr, "first;", 6) != 6 || read(rd, buf, 6) != 6)
		return 1;
	gw = open("gone", O_RDWR | O_CREAT | O_TRUNC, 0644);
	gr = open("gone", O_RDONLY);
	if (gw < 0 || gr < 0 || write(gw, "before;", 7) != 7 || unlink("gone"))
		return 1;
	rw = open("data", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (rw < 0 || write(rw, "0123456789abcdef", 16) != 16)
		return 1;
	dupd = dup(rw);
	lseek(rw, 4, SEEK_SET);
	inh = open("data", O_RDWR);
	other = open("data", O_RDONLY);
	lseek(inh, 7, SEEK_SET);
	lseek(other, 2, SEEK_SET);
	if (pipe(p) || pipe(q))
		return 1;
	child = fork();
	if (!child) {
		char c;
		int bad = 0;

		close(p[0]);
		close(q[1]);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		/* Told by the parent: move the shared offset, then answer. */
		ssize_t n = read(q[0], &c, 1);
		if (n == 0)
			_exit(0); /* the parent is gone (a snapshot's original tree, killed): it judges, not us */
		if (n != 1) {
			dprintf(1, "FAIL: child: no word from the parent: %m\n");
			_exit(1);
		}
		if (lseek(inh, 0, SEEK_CUR) != 9) {
			dprintf(1, "FAIL: child: inherited fd at %ld, want 9 (set by the parent)\n", (long)lseek(inh, 0, SEEK_CUR));
			bad = 1;
		}
		lseek(inh, 11, SEEK_SET);
		if (write(p[1], "m", 1) != 1)
			_exit(1);
		_exit(bad);
	}
	close(p[1]);
	close(q[0]);
	if (read(p[0], buf, 1) != 1)
		zt_fail("child died during setup");
	zt_ready();
	zt_wait_term();
	/* Written through one, read through the other. */
	if (write(wr, "second;", 7) != 7)
		zt_fail("write through the O_APPEND fd: %m");
	memset(buf, 0, sizeof(buf));
	if (read(rd, buf, sizeof(buf)) != 7 || memcmp(buf, "second;", 7))
		zt_fail("the reader at %ld reads \"%s\", want \"second;\"", (long)lseek(rd, 0, SEEK_CUR), buf);
	if (kcmp_file(me, me, wr, rd) == 0)
		zt_fail("the writer and the reader share one open file description");
	/* The same for the deleted file: one inode for both fds. */
	if (write(gw, "after;", 6) != 6)
		zt_fail("write through the deleted file's writer: %m");
	memset(buf, 0, sizeof(buf));
	if (pread(gr, buf, sizeof(buf), 0) != 13 || memcmp(buf, "before;after;", 13))
		zt_fail("the deleted file's reader reads \"%s\", want \"before;after;\"", buf);
	struct stat sw, sr;
	if (fstat(gw, &sw) || fstat(gr, &sr) || sw.st_ino != sr.st_ino || sw.st_dev != sr.st_dev || sw.st_nlink)
		zt_fail("the deleted file's two fds are on inodes %lu and %lu (links %lu)", (unsigned long)sw.st_ino, (unsigned long)sr.st_ino, (unsigned long)sw.st_nlink);
	/* The dup shares the description and its offset. */
	if (kcmp_file(me, me, rw, dupd) != 0)
		zt_fail("fd %d and its dup %d are no longer one open file description", rw, dupd);
	if (lseek(dupd, 0, SEEK_CUR) != 4)
		zt_fail("dup at offset %ld, want 4", (long)lseek(dupd, 0, SEEK_CUR));
	if (write(rw, "XY", 2) != 2 || lseek(dupd, 0, SEEK_CUR) != 6)
		zt_fail("a write through fd %d does not move its dup's offset", rw);
	if (pread(other, buf, 16, 0) != 16 || memcmp(buf, "0123XY6789abcdef", 16))
		zt_fail("the separate reader does not see the write: \"%.16s\"", buf);
	if (kcmp_file(me, me, rw, other) == 0 || kcmp_file(me, me, inh, other) == 0 || kcmp_file(me, me, rw, inh) == 0)
		zt_fail("separate opens of data share a description");
	if (lseek(other, 0, SEEK_CUR) != 2)
		zt_fail("separate reader at %ld, want 2", (long)lseek(other, 0, SEEK_CUR));
	/* The fork-inherited fd is one description in both tasks. */
	if (kcmp_file(me, child, inh, inh) != 0)
		zt_fail("the fd inherited across fork is no longer shared with the child");
	if (lseek(inh, 0, SEEK_CUR) != 7)
		zt_fail("inherited fd at %ld, want 7", (long)lseek(inh, 0, SEEK_CUR));
	lseek(inh, 9, SEEK_SET);
	if (write(q[1], "g", 1) != 1 || read(p[0], buf, 1) != 1)
		zt_fail("the child does not answer");
	else if (lseek(inh, 0, SEEK_CUR) != 11)
		zt_fail("the child's seek to 11 left the parent's fd at %ld", (long)lseek(inh, 0, SEEK_CUR));
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("child exited with status 0x%x", st);
	return zt_finish();
}
