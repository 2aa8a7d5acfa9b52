// zdtm: desc: POSIX timers: a periodic CLOCK_MONOTONIC timer still firing after restore with its sigval, a long one-shot keeping its remaining time, a disarmed one, same timer ids
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <time.h>

static volatile long ticks, bad_value;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER || si->si_value.sival_int != 0xabc)
		bad_value++;
	ticks++;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts))
		;
}

static long long ns(struct timespec t)
{
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	timer_t periodic, oneshot, idle;
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL };
	struct sigaction sa = { .sa_sigaction = on_tick, .sa_flags = SA_SIGINFO | SA_RESTART };
	struct itimerspec per = { { 0, 15000000 }, { 0, 15000000 } };
	struct itimerspec one = { { 0, 0 }, { 1000, 0 } };
	struct itimerspec got;

	zt_init(argc, argv);
	sigaction(SIGRTMIN + 4, &sa, NULL);
	ev.sigev_signo = SIGRTMIN + 4;
	ev.sigev_value.sival_int = 0xabc;
	if (timer_create(CLOCK_MONOTONIC, &ev, &periodic))
		return 1;
	ev.sigev_signo = SIGUSR2;
	ev.sigev_value.sival_int = 0xdef;
	timer_create(CLOCK_REALTIME, &ev, &oneshot);
	ev.sigev_signo = SIGUSR1;
	timer_create(CLOCK_BOOTTIME, &ev, &idle);
	timer_settime(periodic, 0, &per, NULL);
	timer_settime(oneshot, 0, &one, NULL);
	sleep_ms(100);
	if (ticks < 2)
		zt_fail("only %ld ticks before checkpoint", ticks);
	zt_ready();
	zt_wait_term();
	long before = ticks;
	sleep_ms(300);
	if (ticks - before < 8)
		zt_fail("periodic timer: %ld ticks in 300 ms after restore, want >= 8", ticks - before);
	if (bad_value)
		zt_fail("%ld ticks had a wrong si_code or sigval", bad_value);
	if (timer_gettime(periodic, &got) || ns(got.it_interval) != 15000000)
		zt_fail("periodic timer %p: interval %lld ns", periodic, ns(got.it_interval));
	if (timer_gettime(oneshot, &got) || ns(got.it_interval) != 0 || ns(got.it_value) > 1000000000000LL ||
	    ns(got.it_value) < 990000000000LL)
		zt_fail("one-shot timer %p: value %lld ns", oneshot, ns(got.it_value));
	if (timer_gettime(idle, &got) || ns(got.it_value) != 0)
		zt_fail("disarmed timer %p: value %lld ns", idle, ns(got.it_value));
	return zt_finish();
}
