// zdtm: desc: interval timers: ITIMER_REAL ticking every 20 ms keeps firing after restore (ticks counted), ITIMER_VIRTUAL/ITIMER_PROF intervals and remaining values kept
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <sys/time.h>
#include <time.h>

static volatile long ticks;

static void on_alarm(int sig)
{
	(void)sig;
	ticks++;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts))
		;
}

static long usec(struct timeval tv)
{
	return tv.tv_sec * 1000000L + tv.tv_usec;
}

int main(int argc, char **argv)
{
	struct itimerval real = { { 0, 20000 }, { 0, 20000 } };
	struct itimerval virt = { { 50, 0 }, { 100, 0 } };
	struct itimerval prof = { { 3, 250000 }, { 1000, 0 } };
	struct itimerval got;
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };

	zt_init(argc, argv);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &real, NULL);
	setitimer(ITIMER_VIRTUAL, &virt, NULL);
	setitimer(ITIMER_PROF, &prof, NULL);
	sleep_ms(100);
	if (ticks < 2)
		zt_fail("only %ld ticks before checkpoint", ticks);
	zt_ready();
	zt_wait_term();
	long before = ticks;
	sleep_ms(300);
	long after = ticks;
	if (after - before < 5)
		zt_fail("ITIMER_REAL: %ld ticks in 300 ms after restore, want >= 5", after - before);
	getitimer(ITIMER_REAL, &got);
	if (usec(got.it_interval) != 20000 || usec(got.it_value) <= 0 || usec(got.it_value) > 20000)
		zt_fail("ITIMER_REAL interval %ld value %ld us", usec(got.it_interval), usec(got.it_value));
	getitimer(ITIMER_VIRTUAL, &got);
	if (usec(got.it_interval) != 50000000 || usec(got.it_value) > 100050000 || usec(got.it_value) < 90000000)
		zt_fail("ITIMER_VIRTUAL interval %ld value %ld us", usec(got.it_interval), usec(got.it_value));
	getitimer(ITIMER_PROF, &got);
	if (usec(got.it_interval) != 3250000 || usec(got.it_value) > 1000050000 || usec(got.it_value) < 990000000)
		zt_fail("ITIMER_PROF interval %ld value %ld us", usec(got.it_interval), usec(got.it_value));
	return zt_finish();
}
