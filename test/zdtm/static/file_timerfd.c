// zdtm: desc: timerfds: a periodic CLOCK_MONOTONIC timer (1000 s) that expired once and was not read, a relative CLOCK_BOOTTIME one-shot (2000 s, non-blocking), a TFD_TIMER_ABSTIME CLOCK_REALTIME one with TFD_TIMER_CANCEL_ON_SET (3000 s ahead), a one-shot that expired and was not read, a disarmed one, and an epoll watching them; after restore clocks, flags, intervals and unread ticks are as set and the time left is within what the time elapsed since set-up allows
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double secs(struct timespec ts) { return ts.tv_sec + ts.tv_nsec / 1e9; }

/* Checks the time left on fd: no more than want, and no less than want
 * minus the time elapsed since set-up (and a second of slack). */
static void check_left(const char *what, int fd, double want, double interval, double elapsed)
{
	struct itimerspec cur;

	if (timerfd_gettime(fd, &cur)) {
		zt_fail("%s: timerfd_gettime: %m", what);
		return;
	}
	if (secs(cur.it_interval) != interval)
		zt_fail("%s: interval %.9f, want %.0f", what, secs(cur.it_interval), interval);
	if (secs(cur.it_value) > want || secs(cur.it_value) < want - elapsed - 1)
		zt_fail("%s: %.3f s left, want %.0f s less at most %.3f s elapsed", what, secs(cur.it_value), want, elapsed);
}

static uint64_t ticks(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, 8) != 8)
		return 0;
	return v;
}

int main(int argc, char **argv)
{
	struct itimerspec periodic = { .it_interval = { 1000, 0 }, .it_value = { 0, 1 } };
	struct itimerspec oneshot = { .it_value = { 2000, 0 } };
	struct itimerspec abs = { 0 };
	struct itimerspec quick = { .it_value = { 0, 1 } };
	struct epoll_event ev = { .events = EPOLLIN }, evs[8];
	int per, rel, ab, fired, off, ep, n;
	struct timespec rt;
	double start;
	uint64_t v;

	zt_init(argc, argv);
	per = timerfd_create(CLOCK_MONOTONIC, 0);
	rel = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	ab = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC);
	fired = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	off = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	ep = epoll_create1(0);
	if (per < 0 || rel < 0 || ab < 0 || fired < 0 || off < 0 || ep < 0)
		return 1;
	start = now_mono();
	clock_gettime(CLOCK_REALTIME, &rt);
	abs.it_value.tv_sec = rt.tv_sec + 3000;
	abs.it_value.tv_nsec = rt.tv_nsec;
	if (timerfd_settime(per, 0, &periodic, NULL) || timerfd_settime(rel, 0, &oneshot, NULL) ||
	    timerfd_settime(ab, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &abs, NULL))
		return 1;
	if (timerfd_settime(fired, 0, &quick, NULL))
		return 1;
	/* Wait for both expirations: the unread ticks are what is kept. */
	while (1) {
		ev.data.u64 = 0;
		int e2 = epoll_create1(0);
		epoll_ctl(e2, EPOLL_CTL_ADD, fired, &ev);
		epoll_ctl(e2, EPOLL_CTL_ADD, per, &ev);
		n = epoll_wait(e2, evs, 8, 1000);
		close(e2);
		if (n == 2)
			break;
		if (n < 0)
			return 1;
	}
	/* Until it is read or timerfd_gettime asks, an expired periodic timer
	 * shows no time left in fdinfo, and CRIU 4.2, which reads only
	 * fdinfo, would restore it disarmed: move it on to its next period
	 * (gockpt's dump does the same itself). */
	if (timerfd_gettime(per, &periodic))
		return 1;
	ev.data.u64 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, per, &ev);
	ev.data.u64 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, rel, &ev);
	ev.data.u64 = 3;
	epoll_ctl(ep, EPOLL_CTL_ADD, fired, &ev);
	ev.data.u64 = 4;
	epoll_ctl(ep, EPOLL_CTL_ADD, off, &ev);
	zt_ready();
	zt_wait_term();

	double elapsed = now_mono() - start;
	int ready = 0;
	n = epoll_wait(ep, evs, 8, 0);
	for (int i = 0; i < n; i++)
		ready |= 1 << evs[i].data.u64;
	if (ready != (1 << 1 | 1 << 3))
		zt_fail("epoll reports ready mask %#x, want the two expired timers (%#x)", ready, 1 << 1 | 1 << 3);
	check_left("periodic", per, 1000, 1000, elapsed);
	check_left("relative", rel, 2000, 0, elapsed);
	check_left("absolute", ab, 3000, 0, elapsed);
	check_left("disarmed", off, 0, 0, 0);
	check_left("expired", fired, 0, 0, 0);
	if (!(fcntl(rel, F_GETFL) & O_NONBLOCK) || (fcntl(per, F_GETFL) & O_NONBLOCK))
		zt_fail("O_NONBLOCK not as set");
	if (!(fcntl(ab, F_GETFD) & FD_CLOEXEC) || (fcntl(per, F_GETFD) & FD_CLOEXEC))
		zt_fail("close-on-exec not as set");
	if ((v = ticks(fired)) != 1)
		zt_fail("expired one-shot: %llu ticks, want 1", (unsigned long long)v);
	if ((v = ticks(fired)) != 0)
		zt_fail("expired one-shot: %llu more ticks, want none", (unsigned long long)v);
	if ((v = ticks(per)) != 1)
		zt_fail("periodic: %llu ticks, want 1", (unsigned long long)v);
	if ((v = ticks(rel)) != 0)
		zt_fail("relative: %llu ticks, want none yet", (unsigned long long)v);
	return zt_finish();
}
