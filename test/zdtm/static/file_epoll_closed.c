// zdtm: desc: epoll targets whose fd was closed since: pipes added under dup'ed numbers (two under one number) then closed, a number reused by another file after its target was closed, a target still open; each watched file still signals with its own data
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define NPIPES 4

int main(int argc, char **argv)
{
	/* Added as: 600 (closed), 600 (closed), 601 (kept), 602 (closed, then reused by an eventfd). */
	static const int addas[NPIPES] = { 600, 600, 601, 602 };
	static const int closed[NPIPES] = { 1, 1, 0, 1 };
	int ep, p[NPIPES][2], efd, n;
	struct epoll_event ev;

	zt_init(argc, argv);
	ep = epoll_create1(0);
	if (ep < 0)
		return 1;
	for (int i = 0; i < NPIPES; i++) {
		if (pipe(p[i]) || dup2(p[i][0], addas[i]) != addas[i])
			return 1;
		ev.events = EPOLLIN;
		ev.data.u64 = 0x1000 + i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, addas[i], &ev)) {
			zt_fail("epoll_ctl add %d: %m", addas[i]);
			return 1;
		}
		if (closed[i])
			close(addas[i]);
	}
	efd = eventfd(1, 0); /* readable, and not watched */
	if (efd < 0 || dup2(efd, 602) != 602)
		return 1;
	close(efd);
	zt_ready();
	zt_wait_term();
	n = epoll_wait(ep, &ev, 1, 0);
	if (n != 0)
		zt_fail("epoll_wait reports %d events before any write (data %#llx): the eventfd at 602 is watched", n, (unsigned long long)ev.data.u64);
	for (int i = 0; i < NPIPES; i++) {
		char c = 'x';

		if (write(p[i][1], &c, 1) != 1)
			zt_fail("write pipe %d: %m", i);
		n = epoll_wait(ep, &ev, 1, 1000);
		if (n != 1)
			zt_fail("pipe %d (added as fd %d): epoll_wait gives %d events, want 1", i, addas[i], n);
		else if (ev.data.u64 != 0x1000 + (unsigned)i || ev.events != EPOLLIN)
			zt_fail("pipe %d (added as fd %d): event data %#llx events %#x, want %#x EPOLLIN", i, addas[i],
				(unsigned long long)ev.data.u64, ev.events, 0x1000 + i);
		if (read(p[i][0], &c, 1) != 1)
			zt_fail("read pipe %d: %m", i);
	}
	return zt_finish();
}
