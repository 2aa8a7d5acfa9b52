// zdtm: desc: flock locks with --file-locks: the root holds an exclusive lock on a.dat, on an open file description a child shares (inherited), and a shared one on b.dat, which the child also holds shared through its own open; the child holds c.dat exclusively, and another child waits in flock for a.dat; after restore a new process finds each lock held (LOCK_NB), the holders can unlock, an unlock through the shared description frees the file, and the waiter gets a.dat once the root lets go
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: opts: --file-locks
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/wait.h>

/* try: can a new process take op (LOCK_SH or LOCK_EX) on path? */
static int try(const char *path, int op)
{
	int status;
	pid_t p = fork();

	if (p == 0) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			_exit(2);
		if (flock(fd, op | LOCK_NB) == 0)
			_exit(0);
		_exit(errno == EWOULDBLOCK ? 1 : 3);
	}
	if (p < 0 || waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status) > 1) {
		zt_fail("trying a lock on %s failed (%#x)", path, status);
		return -1;
	}
	return WEXITSTATUS(status) == 0;
}

static void expect(const char *when, const char *path, int op, int can)
{
	int got = try(path, op);
	if (got >= 0 && got != can)
		zt_fail("%s: a new process %s take %s on %s, want it %s", when, got ? "can" : "cannot",
			op == LOCK_EX ? "LOCK_EX" : "LOCK_SH", path, can ? "to" : "not to");
}

/* waiting tells whether /proc/locks shows task pid blocked on a flock. */
static int waiting(pid_t pid)
{
	char buf[16384], pat[32];
	snprintf(pat, sizeof(pat), "FLOCK  ADVISORY  WRITE %d ", pid);
	if (zt_read_file("/proc/locks", buf, sizeof(buf)) < 0)
		return 0;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (strstr(l, "->") && strstr(l, pat))
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
	int a, b, toC[2], fromC[2], toW[2], fromW[2], status;
	pid_t c, w;
	char ch;

	zt_init(argc, argv);
	a = open("a.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	b = open("b.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	close(open("c.dat", O_RDWR | O_CREAT | O_TRUNC, 0600));
	if (a < 0 || b < 0 || pipe(toC) || pipe(fromC) || pipe(toW) || pipe(fromW))
		return 1;
	if (flock(a, LOCK_EX | LOCK_NB) || flock(b, LOCK_SH | LOCK_NB))
		zt_skip("cannot take flock locks here: %m");

	c = fork();
	if (c == 0) {
		int cb = open("b.dat", O_RDONLY), cc = open("c.dat", O_RDONLY);
		if (cb < 0 || cc < 0 || flock(cb, LOCK_SH | LOCK_NB) || flock(cc, LOCK_EX | LOCK_NB))
			_exit(2);
		if (write(fromC[1], "r", 1) != 1 || read(toC[0], &ch, 1) != 1)
			_exit(3);
		/* Unlock c.dat, then a.dat through the description shared with the root. */
		if (flock(cc, LOCK_UN) || write(fromC[1], "c", 1) != 1 || read(toC[0], &ch, 1) != 1)
			_exit(4);
		if (flock(a, LOCK_UN) || write(fromC[1], "a", 1) != 1 || read(toC[0], &ch, 1) != 1)
			_exit(5);
		_exit(0);
	}
	w = fork();
	if (w == 0) {
		int wa = open("a.dat", O_RDONLY);
		while (flock(wa, LOCK_EX))
			if (errno != EINTR)
				_exit(2);
		if (write(fromW[1], "w", 1) != 1 || read(toW[0], &ch, 1) != 1)
			_exit(3);
		_exit(0);
	}
	if (c < 0 || w < 0 || read(fromC[0], &ch, 1) != 1)
		zt_fail("children not started");
	for (int i = 0; i < 5000 && !waiting(w); i++)
		usleep(1000);
	if (!waiting(w))
		zt_fail("child %d is not waiting for the lock", w);
	zt_ready();
	zt_wait_term();

	expect("after restore", "a.dat", LOCK_SH, 0);
	expect("after restore", "b.dat", LOCK_SH, 1);
	expect("after restore", "b.dat", LOCK_EX, 0);
	expect("after restore", "c.dat", LOCK_SH, 0);
	if (readable(fromW[0], 0))
		zt_fail("the waiter got a.dat while the root holds it");

	/* The root lets go of b.dat: the child's shared lock still holds it. */
	if (flock(b, LOCK_UN))
		zt_fail("root: unlock b.dat: %m");
	expect("root unlocked b.dat", "b.dat", LOCK_EX, 0);
	expect("root unlocked b.dat", "b.dat", LOCK_SH, 1);

	if (write(toC[1], "g", 1) != 1 || !readable(fromC[0], 5000) || read(fromC[0], &ch, 1) != 1 || ch != 'c')
		zt_fail("child %d did not unlock c.dat", c);
	expect("child unlocked c.dat", "c.dat", LOCK_EX, 1);

	/* The child's unlock of a.dat, on the description it shares with the
	 * root, frees it: the waiter takes it. */
	if (write(toC[1], "g", 1) != 1 || !readable(fromC[0], 5000) || read(fromC[0], &ch, 1) != 1 || ch != 'a')
		zt_fail("child %d did not unlock a.dat", c);
	if (!readable(fromW[0], 5000) || read(fromW[0], &ch, 1) != 1)
		zt_fail("the waiter %d did not get a.dat once it was let go", w);
	expect("waiter holds a.dat", "a.dat", LOCK_SH, 0);

	if (write(toC[1], "q", 1) != 1 || write(toW[1], "q", 1) != 1)
		zt_fail("cannot end the children");
	if (waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("holder child ended with %#x", status);
	if (waitpid(w, &status, 0) != w || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("waiter child ended with %#x", status);
	return zt_finish();
}
