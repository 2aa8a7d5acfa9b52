// zdtm: desc: OFD locks (F_OFD_SETLK) with --file-locks: one open file description, shared with a child, holds write locks on bytes 0-9 and from 50 to the end and a read lock on 20-29; a second one of the root a read lock on 20-29 and a write lock on 30-39; the child's own one a write lock on 40-49; another child waits in F_OFD_SETLKW for 30-39; after restore a new process sees each range held or free as it was (F_OFD_GETLK), the locks can be released through each description (also by the child through the shared one), and the waiter gets its lock once 30-39 is let go
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: opts: --file-locks
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>

static const char *path = "locks_ofd.dat";

static int ofdlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	return fcntl(fd, cmd, &fl);
}

/* A range a new open file description sees: want F_UNLCK for a free one,
 * else the type of the lock in the way. */
struct expect {
	short type;
	off_t start, len;
	short want;
};

static int check(const char *when, const struct expect *e, int n)
{
	int status;
	pid_t p = fork();

	if (p == 0) {
		int fd = open(path, O_RDWR), bad = 0;
		for (int i = 0; i < n; i++) {
			struct flock fl = { .l_type = e[i].type, .l_whence = SEEK_SET, .l_start = e[i].start, .l_len = e[i].len };
			if (fd < 0 || fcntl(fd, F_OFD_GETLK, &fl)) {
				zt_fail("%s: F_OFD_GETLK: %m", when);
				_exit(1);
			}
			if (fl.l_type != e[i].want || (e[i].want != F_UNLCK && fl.l_pid != -1)) {
				zt_fail("%s: %s lock on %lld+%lld: F_OFD_GETLK says type %d by %d, want type %d by an OFD (-1)", when,
					e[i].type == F_WRLCK ? "write" : "read", (long long)e[i].start, (long long)e[i].len,
					fl.l_type, fl.l_pid, e[i].want);
				bad++;
			}
		}
		_exit(bad);
	}
	if (p < 0 || waitpid(p, &status, 0) != p || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}

/* waiting tells whether /proc/locks shows an OFD lock request blocked on
 * bytes 30-39. */
static int waiting(void)
{
	char buf[16384];
	if (zt_read_file("/proc/locks", buf, sizeof(buf)) < 0)
		return 0;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (strstr(l, "->") && strstr(l, "OFDLCK ADVISORY  WRITE -1 ") && strstr(l, " 30 39"))
			return 1;
	return 0;
}

static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, ms) == 1;
}

int main(int argc, char **argv)
{
	int fd, fd2, toC[2], fromC[2], toW[2], fromW[2], status;
	pid_t c, w;
	char ch;

	zt_init(argc, argv);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fd2 = open(path, O_RDWR);
	if (fd < 0 || fd2 < 0 || pipe(toC) || pipe(fromC) || pipe(toW) || pipe(fromW))
		return 1;
	if (ofdlk(fd, F_OFD_SETLK, F_WRLCK, 0, 10) || ofdlk(fd, F_OFD_SETLK, F_RDLCK, 20, 10) || ofdlk(fd, F_OFD_SETLK, F_WRLCK, 50, 0))
		zt_skip("cannot take OFD locks here: %m");
	if (ofdlk(fd2, F_OFD_SETLK, F_RDLCK, 20, 10) || ofdlk(fd2, F_OFD_SETLK, F_WRLCK, 30, 10))
		return 1;

	c = fork();
	if (c == 0) {
		int cfd = open(path, O_RDWR);
		if (cfd < 0 || ofdlk(cfd, F_OFD_SETLK, F_WRLCK, 40, 10))
			_exit(2);
		if (write(fromC[1], "r", 1) != 1 || read(toC[0], &ch, 1) != 1)
			_exit(3);
		/* Its own description's lock, then one of the shared description. */
		if (ofdlk(cfd, F_OFD_SETLK, F_UNLCK, 40, 10) || ofdlk(fd, F_OFD_SETLK, F_UNLCK, 0, 10) || write(fromC[1], "u", 1) != 1 ||
		    read(toC[0], &ch, 1) != 1)
			_exit(4);
		_exit(0);
	}
	w = fork();
	if (w == 0) {
		int wfd = open(path, O_RDWR);
		while (ofdlk(wfd, F_OFD_SETLKW, F_WRLCK, 30, 10))
			if (errno != EINTR)
				_exit(2);
		if (write(fromW[1], "w", 1) != 1 || read(toW[0], &ch, 1) != 1)
			_exit(3);
		_exit(0);
	}
	if (c < 0 || w < 0 || read(fromC[0], &ch, 1) != 1)
		zt_fail("children not started");
	for (int i = 0; i < 5000 && !waiting(); i++)
		usleep(1000);
	if (!waiting())
		zt_fail("child %d is not waiting for the lock", w);
	zt_ready();
	zt_wait_term();

	const struct expect held[] = {
		{ F_WRLCK, 0, 10, F_WRLCK },  { F_RDLCK, 9, 1, F_WRLCK },   { F_WRLCK, 10, 10, F_UNLCK },
		{ F_RDLCK, 20, 10, F_UNLCK }, { F_WRLCK, 20, 10, F_RDLCK }, { F_RDLCK, 30, 10, F_WRLCK },
		{ F_RDLCK, 40, 10, F_WRLCK }, { F_RDLCK, 50, 1, F_WRLCK },  { F_WRLCK, 1 << 30, 1, F_WRLCK },
	};
	if (check("after restore", held, sizeof(held) / sizeof(held[0])))
		zt_fail("the locks are not as they were taken");
	/* The descriptions' own locks do not conflict with themselves. */
	if (ofdlk(fd, F_OFD_SETLK, F_WRLCK, 0, 10) || ofdlk(fd2, F_OFD_SETLK, F_WRLCK, 30, 10))
		zt_fail("a description cannot take its own range again: %m");
	if (readable(fromW[0], 0))
		zt_fail("the waiter got its lock while 30-39 is held");

	if (ofdlk(fd, F_OFD_SETLK, F_UNLCK, 50, 0))
		zt_fail("unlock from byte 50: %m");
	const struct expect from50[] = { { F_WRLCK, 50, 0, F_UNLCK } };
	if (check("unlocked from 50", from50, 1))
		zt_fail("the unlock did not free bytes from 50");

	if (write(toC[1], "g", 1) != 1 || !readable(fromC[0], 5000) || read(fromC[0], &ch, 1) != 1)
		zt_fail("child %d did not unlock", c);
	const struct expect child[] = { { F_WRLCK, 40, 10, F_UNLCK }, { F_WRLCK, 0, 10, F_UNLCK } };
	if (check("child unlocked", child, 2))
		zt_fail("the child's unlocks did not free bytes 0-9 and 40-49");

	if (ofdlk(fd2, F_OFD_SETLK, F_UNLCK, 30, 10))
		zt_fail("unlock 30-39: %m");
	if (!readable(fromW[0], 5000) || read(fromW[0], &ch, 1) != 1)
		zt_fail("the waiter %d did not get bytes 30-39 once they were let go", w);

	if (write(toC[1], "q", 1) != 1 || write(toW[1], "q", 1) != 1)
		zt_fail("cannot end the children");
	if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("holder child ended with %#x", status);
	if (waitpid(w, &status, 0) != w || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("waiter child ended with %#x", status);
	return zt_finish();
}
