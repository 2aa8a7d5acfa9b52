// zdtm: desc: eventfds (one at 5, non-blocking; one at 7) and an epoll watching both and a pipe, shared with a forked child; after restore the counters and modes are as set, and epoll reports the same ready files with their data, in the parent and in the child (one epoll, filled once)
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>

static int nb, plain, ep, p[2];

/* Checks what epoll reports: the two eventfds and the pipe, each with its data. */
static int check_epoll(const char *who)
{
	struct epoll_event evs[8];
	int n = epoll_wait(ep, evs, 8, 0), seen = 0, bad = 0;

	for (int i = 0; i < n; i++) {
		if (evs[i].data.u64 == 0xa1 || evs[i].data.u64 == 0xb2 || evs[i].data.u64 == 0xc3)
			seen |= 1 << (evs[i].data.u64 & 3);
		else {
			dprintf(1, "FAIL: %s: epoll reports data %#llx\n", who, (unsigned long long)evs[i].data.u64);
			bad++;
		}
	}
	if (n != 3 || seen != (1 << 1 | 1 << 2 | 1 << 3)) {
		dprintf(1, "FAIL: %s: epoll reports %d ready (mask %#x), want the 3 watched files\n", who, n, seen);
		bad++;
	}
	return bad;
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ready[2], go[2], status;
	uint64_t v;
	char c;

	zt_init(argc, argv);
	nb = eventfd(5, EFD_NONBLOCK);
	plain = eventfd(7, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (nb < 0 || plain < 0 || ep < 0 || pipe(p) || write(p[1], "x", 1) != 1)
		return 1;
	ev.data.u64 = 0xa1;
	epoll_ctl(ep, EPOLL_CTL_ADD, nb, &ev);
	ev.data.u64 = 0xb2;
	epoll_ctl(ep, EPOLL_CTL_ADD, plain, &ev);
	ev.data.u64 = 0xc3;
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	if (pipe(ready) || pipe(go))
		return 1;
	pid_t child = fork();
	if (child == 0) {
		close(ready[0]);
		close(go[1]);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		_exit(check_epoll("child") ? 1 : 0);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child not ready");
	zt_ready();
	zt_wait_term();
	if (check_epoll("parent"))
		zt_fail("parent's epoll");
	if (write(go[1], "g", 1) != 1 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("child's epoll (status %#x)", status);
	if (!(fcntl(nb, F_GETFL) & O_NONBLOCK))
		zt_fail("eventfd lost O_NONBLOCK");
	if (read(nb, &v, 8) != 8 || v != 5)
		zt_fail("non-blocking eventfd counter %llu, want 5", (unsigned long long)v);
	if (read(nb, &v, 8) != -1)
		zt_fail("non-blocking eventfd reads again after its counter");
	if (read(plain, &v, 8) != 8 || v != 7)
		zt_fail("eventfd counter %llu, want 7", (unsigned long long)v);
	return zt_finish();
}
