// zdtm: desc: pidfds within the tree: the root holds a blocking pidfd (fd 10, close-on-exec cleared) and a PIDFD_NONBLOCK one (fd 11) of its child, the child a pidfd of its parent (fd 12); after restore each fdinfo Pid: is the target, the flags are kept, poll is not readable while the target lives, pidfd_send_signal reaches the child, poll turns readable when it exits and waitid(P_PIDFD) reaps it with its status
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

enum { BLOCKING = 10, NONBLOCK = 11, OF_PARENT = 12, CHILD_STATUS = 42 };

static int pidfd_open(pid_t pid, unsigned int flags)
{
	return syscall(SYS_pidfd_open, pid, flags);
}

/* The fdinfo Pid: of fd, or -2 if there is none. */
static int fdinfo_pid(int fd)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if (zt_read_file(path, buf, sizeof buf) < 0)
		return -2;
	p = strstr(buf, "\nPid:");
	return p ? atoi(p + 5) : -2;
}

/* Opens a pidfd of pid and moves it to fd number want. */
static int pidfd_at(pid_t pid, unsigned int flags, int want)
{
	int fd = pidfd_open(pid, flags);

	if (fd < 0 || dup3(fd, want, O_CLOEXEC) != want)
		return -1;
	close(fd);
	return want;
}

/* 1 if fd polls readable now, 0 if not, -1 on error. */
static int readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, timeout_ms);

	return n < 0 ? -1 : n > 0 && (p.revents & POLLIN);
}

static void child(int to_parent, int from_parent)
{
	sigset_t usr1;
	char c;
	int bad = 0;

	if (pidfd_at(getppid(), 0, OF_PARENT) < 0) {
		dprintf(1, "FAIL: child: pidfd_open(parent): %m\n");
		_exit(1);
	}
	if (write(to_parent, "r", 1) != 1)
		_exit(1);
	/* Told by the parent after restore: check, then wait for its signal. */
	ssize_t n = read(from_parent, &c, 1);
	if (n == 0)
		_exit(0); /* the parent is gone (a snapshot's original tree, killed): it judges, not us */
	if (n != 1) {
		dprintf(1, "FAIL: child: no word from the parent: %m\n");
		_exit(1);
	}
	if (fdinfo_pid(OF_PARENT) != getppid()) {
		dprintf(1, "FAIL: child: pidfd %d has Pid: %d, want the parent %d\n", OF_PARENT, fdinfo_pid(OF_PARENT), getppid());
		bad = 1;
	}
	if (readable(OF_PARENT, 0) != 0) {
		dprintf(1, "FAIL: child: the pidfd of the living parent polls readable\n");
		bad = 1;
	}
	if (write(to_parent, "c", 1) != 1)
		_exit(1);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	struct timespec ts = { .tv_sec = 10 };
	if (sigtimedwait(&usr1, NULL, &ts) != SIGUSR1) {
		dprintf(1, "FAIL: child: no SIGUSR1 from the parent's pidfd_send_signal: %m\n");
		bad = 1;
	}
	_exit(bad ? 1 : CHILD_STATUS);
}

int main(int argc, char **argv)
{
	int p[2], q[2], fl;
	sigset_t usr1;
	char c;
	pid_t kid;

	zt_init(argc, argv);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL); /* the child takes it with sigtimedwait */
	if (pipe(p) || pipe(q))
		return 1;
	kid = fork();
	if (kid < 0)
		return 1;
	if (!kid) {
		close(p[0]);
		close(q[1]);
		child(p[1], q[0]);
	}
	close(p[1]);
	close(q[0]);
	if (pidfd_at(kid, 0, BLOCKING) < 0 || pidfd_at(kid, PIDFD_NONBLOCK, NONBLOCK) < 0 || fcntl(BLOCKING, F_SETFD, 0))
		zt_fail("pidfd_open(child %d): %m", kid);
	if (read(p[0], &c, 1) != 1)
		zt_fail("child died during setup");
	zt_ready();
	zt_wait_term();

	for (int fd = BLOCKING; fd <= NONBLOCK; fd++)
		if (fdinfo_pid(fd) != kid)
			zt_fail("pidfd %d has Pid: %d, want the child %d", fd, fdinfo_pid(fd), kid);
	if ((fl = fcntl(BLOCKING, F_GETFL)) < 0 || fl & O_NONBLOCK)
		zt_fail("pidfd %d has flags %#o, want blocking", BLOCKING, fl);
	if ((fl = fcntl(NONBLOCK, F_GETFL)) < 0 || !(fl & O_NONBLOCK))
		zt_fail("pidfd %d has flags %#o, want PIDFD_NONBLOCK", NONBLOCK, fl);
	if (fcntl(BLOCKING, F_GETFD) != 0 || fcntl(NONBLOCK, F_GETFD) != FD_CLOEXEC)
		zt_fail("close-on-exec: fd %d %d, fd %d %d; want 0 and 1", BLOCKING, fcntl(BLOCKING, F_GETFD), NONBLOCK, fcntl(NONBLOCK, F_GETFD));
	if (readable(BLOCKING, 0) != 0 || readable(NONBLOCK, 0) != 0)
		zt_fail("a pidfd of the living child polls readable");
	siginfo_t si = { 0 };
	errno = 0;
	if (waitid(P_PIDFD, NONBLOCK, &si, WEXITED) != -1 || errno != EAGAIN)
		zt_fail("waitid on the PIDFD_NONBLOCK pidfd of the living child: %m, want EAGAIN");

	if (write(q[1], "g", 1) != 1 || read(p[0], &c, 1) != 1)
		zt_fail("the child does not answer");
	if (syscall(SYS_pidfd_send_signal, BLOCKING, SIGUSR1, NULL, 0))
		zt_fail("pidfd_send_signal(%d, SIGUSR1): %m", BLOCKING);
	if (readable(BLOCKING, 10000) != 1)
		zt_fail("the pidfd does not poll readable once the child exits");
	if (readable(NONBLOCK, 0) != 1)
		zt_fail("the PIDFD_NONBLOCK pidfd does not poll readable once the child exits");
	memset(&si, 0, sizeof si);
	if (waitid(P_PIDFD, BLOCKING, &si, WEXITED))
		zt_fail("waitid(P_PIDFD, %d): %m", BLOCKING);
	else if (si.si_pid != kid || si.si_code != CLD_EXITED || si.si_status != CHILD_STATUS)
		zt_fail("waitid(P_PIDFD) reaped pid %d code %d status %d, want %d CLD_EXITED %d", si.si_pid, si.si_code, si.si_status, kid, CHILD_STATUS);
	return zt_finish();
}
