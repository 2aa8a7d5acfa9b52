// zdtm: desc: two signalfds (SIGUSR1, SIGUSR2 and SIGRTMIN+3, non-blocking; SIGHUP, close-on-exec) with a blocked SIGUSR1 pending, and an epoll watching both; after restore the pending SIGUSR1 is read through the first, epoll reports only that one ready, the masks are as set (a SIGUSR2 and a SIGHUP sent after restore come through the right fd) and the flags are kept
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

/* Reads one signal from fd; returns its number, 0 when none is there. */
static int read_sig(int fd)
{
	struct signalfd_siginfo si;
	ssize_t n = read(fd, &si, sizeof si);

	if (n == sizeof si)
		return (int)si.ssi_signo;
	return 0;
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[4];
	sigset_t a, b, all;
	int sa, sb, ep, n;

	zt_init(argc, argv);
	sigemptyset(&a);
	sigaddset(&a, SIGUSR1);
	sigaddset(&a, SIGUSR2);
	sigaddset(&a, SIGRTMIN + 3);
	sigemptyset(&b);
	sigaddset(&b, SIGHUP);
	sigemptyset(&all);
	sigaddset(&all, SIGUSR1);
	sigaddset(&all, SIGUSR2);
	sigaddset(&all, SIGRTMIN + 3);
	sigaddset(&all, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &all, NULL))
		return 1;
	sa = signalfd(-1, &a, SFD_NONBLOCK);
	sb = signalfd(-1, &b, SFD_CLOEXEC);
	ep = epoll_create1(0);
	if (sa < 0 || sb < 0 || ep < 0)
		return 1;
	ev.data.u64 = 0xa;
	epoll_ctl(ep, EPOLL_CTL_ADD, sa, &ev);
	ev.data.u64 = 0xb;
	epoll_ctl(ep, EPOLL_CTL_ADD, sb, &ev);
	kill(getpid(), SIGUSR1);
	zt_ready();
	zt_wait_term();

	n = epoll_wait(ep, evs, 4, 0);
	if (n != 1 || evs[0].data.u64 != 0xa)
		zt_fail("epoll reports %d ready (first data %#llx), want only the first signalfd", n, n > 0 ? (unsigned long long)evs[0].data.u64 : 0ULL);
	if (!(fcntl(sa, F_GETFL) & O_NONBLOCK) || (fcntl(sa, F_GETFD) & FD_CLOEXEC))
		zt_fail("first signalfd: flags %#x fd flags %#x, want O_NONBLOCK and no close-on-exec", fcntl(sa, F_GETFL), fcntl(sa, F_GETFD));
	if ((fcntl(sb, F_GETFL) & O_NONBLOCK) || !(fcntl(sb, F_GETFD) & FD_CLOEXEC))
		zt_fail("second signalfd: flags %#x fd flags %#x, want blocking and close-on-exec", fcntl(sb, F_GETFL), fcntl(sb, F_GETFD));
	if ((n = read_sig(sa)) != SIGUSR1)
		zt_fail("first signalfd read signal %d, want the pending SIGUSR1", n);
	if ((n = read_sig(sa)) != 0)
		zt_fail("first signalfd read signal %d after SIGUSR1, want none", n);
	/* The masks: each signal comes through the fd that asked for it. */
	kill(getpid(), SIGHUP);
	kill(getpid(), SIGUSR2);
	if ((n = read_sig(sa)) != SIGUSR2)
		zt_fail("first signalfd read signal %d, want SIGUSR2 sent after restore", n);
	if ((n = read_sig(sa)) != 0)
		zt_fail("first signalfd read signal %d, want none (SIGHUP is not in its mask)", n);
	if ((n = read_sig(sb)) != SIGHUP)
		zt_fail("second signalfd read signal %d, want SIGHUP", n);
	return zt_finish();
}
