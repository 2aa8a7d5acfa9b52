// zdtm: desc: POSIX locks (fcntl F_SETLK) with --file-locks: the root holds write locks on bytes 0-9 and from 100 to the end and a read lock on 20-29, a child (its own open) a read lock on 20-29 too and a write lock on 40-49, another child waits in F_SETLKW for bytes 0-9; after restore a new process sees each lock held by its holder and the gaps free, each holder can unlock, and the waiter gets its lock once the root lets go
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: opts: --file-locks
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>

static const char *path = "locks_posix.dat";

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
	return fcntl(fd, cmd, &fl);
}

/* One lock a process other than its holders sees: want F_UNLCK for a free
 * range, else the type and holder (0: any) F_GETLK reports. */
struct expect {
	short type;
	off_t start, len;
	short want;
	pid_t pid;
};

/* check forks a new process that looks at each range through its own open
 * of the file; it returns how many differ. */
static int check(const char *when, const struct expect *e, int n)
{
	int status;
	pid_t p = fork();

	if (p == 0) {
		int fd = open(path, O_RDWR), bad = 0;
		for (int i = 0; i < n; i++) {
			struct flock fl = { .l_type = e[i].type, .l_whence = SEEK_SET, .l_start = e[i].start, .l_len = e[i].len };
			if (fd < 0 || fcntl(fd, F_GETLK, &fl)) {
				zt_fail("%s: F_GETLK: %m", when);
				_exit(1);
			}
			if (fl.l_type != e[i].want || (e[i].want != F_UNLCK && e[i].pid && fl.l_pid != e[i].pid)) {
				zt_fail("%s: %s lock on %lld+%lld: F_GETLK says type %d by %d, want type %d by %d", when,
					e[i].type == F_WRLCK ? "write" : "read", (long long)e[i].start, (long long)e[i].len,
					fl.l_type, fl.l_pid, e[i].want, e[i].pid);
				bad++;
			}
		}
		_exit(bad);
	}
	if (p < 0 || waitpid(p, &status, 0) != p || !WIFEXITED(status))
		return 1;
	return WEXITSTATUS(status);
}

/* waiting tells whether /proc/locks shows task pid blocked on a lock. */
static int waiting(pid_t pid)
{
	char buf[16384], pat[32];
	snprintf(pat, sizeof(pat), "POSIX  ADVISORY  WRITE %d ", pid);
	if (zt_read_file("/proc/locks", buf, sizeof(buf)) < 0)
		return 0;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (strstr(l, "->") && strstr(l, pat))
			return 1;
	return 0;
}

/* readable waits up to ms for fd to have data. */
static int readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, ms) == 1;
}

int main(int argc, char **argv)
{
	int fd, toA[2], fromA[2], toW[2], fromW[2], status;
	pid_t a, w, root;
	char c;

	zt_init(argc, argv);
	root = getpid();
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || pipe(toA) || pipe(fromA) || pipe(toW) || pipe(fromW))
		return 1;
	if (setlk(fd, F_SETLK, F_WRLCK, 0, 10) || setlk(fd, F_SETLK, F_RDLCK, 20, 10) || setlk(fd, F_SETLK, F_WRLCK, 100, 0))
		zt_skip("cannot take POSIX locks here: %m");

	a = fork();
	if (a == 0) {
		int afd = open(path, O_RDWR);
		if (afd < 0 || setlk(afd, F_SETLK, F_RDLCK, 20, 10) || setlk(afd, F_SETLK, F_WRLCK, 40, 10))
			_exit(2);
		if (write(fromA[1], "r", 1) != 1 || read(toA[0], &c, 1) != 1)
			_exit(3);
		/* The holder can still let go of its lock after restore. */
		if (setlk(afd, F_SETLK, F_UNLCK, 40, 10) || write(fromA[1], "u", 1) != 1 || read(toA[0], &c, 1) != 1)
			_exit(4);
		_exit(0);
	}
	w = fork();
	if (w == 0) {
		int wfd = open(path, O_RDWR);
		/* Blocks until the root unlocks bytes 0-9: after restore. */
		while (setlk(wfd, F_SETLKW, F_WRLCK, 0, 10))
			if (errno != EINTR)
				_exit(2);
		if (write(fromW[1], "w", 1) != 1 || read(toW[0], &c, 1) != 1)
			_exit(3);
		_exit(0);
	}
	if (a < 0 || w < 0 || read(fromA[0], &c, 1) != 1)
		zt_fail("children not started");
	for (int i = 0; i < 5000 && !waiting(w); i++)
		usleep(1000);
	if (!waiting(w))
		zt_fail("child %d is not waiting for the lock", w);
	zt_ready();
	zt_wait_term();

	const struct expect held[] = {
		{ F_WRLCK, 0, 10, F_WRLCK, root },     { F_RDLCK, 5, 1, F_WRLCK, root },
		{ F_WRLCK, 10, 10, F_UNLCK, 0 },       { F_RDLCK, 20, 10, F_UNLCK, 0 },
		{ F_WRLCK, 20, 10, F_RDLCK, 0 },       { F_WRLCK, 30, 10, F_UNLCK, 0 },
		{ F_WRLCK, 40, 10, F_WRLCK, a },       { F_RDLCK, 49, 1, F_WRLCK, a },
		{ F_WRLCK, 50, 50, F_UNLCK, 0 },       { F_RDLCK, 100, 1, F_WRLCK, root },
		{ F_WRLCK, 1 << 30, 1, F_WRLCK, root },
	};
	if (check("after restore", held, sizeof(held) / sizeof(held[0])))
		zt_fail("the locks are not as they were taken");
	if (readable(fromW[0], 0))
		zt_fail("the waiter got its lock while the root holds it");

	if (setlk(fd, F_SETLK, F_UNLCK, 100, 0))
		zt_fail("root: unlock from byte 100: %m");
	const struct expect root_unlocked[] = { { F_WRLCK, 100, 0, F_UNLCK, 0 } };
	if (check("root unlocked from 100", root_unlocked, 1))
		zt_fail("the root's unlock did not free bytes from 100");

	if (write(toA[1], "g", 1) != 1 || !readable(fromA[0], 5000) || read(fromA[0], &c, 1) != 1 || c != 'u')
		zt_fail("child %d did not unlock", a);
	const struct expect a_unlocked[] = { { F_WRLCK, 40, 10, F_UNLCK, 0 }, { F_WRLCK, 20, 10, F_RDLCK, 0 } };
	if (check("child unlocked 40-49", a_unlocked, 2))
		zt_fail("after the child's unlock of bytes 40-49, the locks are not as expected");

	if (setlk(fd, F_SETLK, F_UNLCK, 0, 10))
		zt_fail("root: unlock bytes 0-9: %m");
	if (!readable(fromW[0], 5000) || read(fromW[0], &c, 1) != 1)
		zt_fail("the waiter %d did not get bytes 0-9 once the root let go", w);
	const struct expect w_got[] = { { F_RDLCK, 0, 10, F_WRLCK, w } };
	if (check("waiter holds 0-9", w_got, 1))
		zt_fail("the waiter does not hold bytes 0-9");

	if (write(toA[1], "q", 1) != 1 || write(toW[1], "q", 1) != 1)
		zt_fail("cannot end the children");
	if (waitpid(a, &status, 0) != a || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("holder child ended with %#x", status);
	if (waitpid(w, &status, 0) != w || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("waiter child ended with %#x", status);
	return zt_finish();
}
