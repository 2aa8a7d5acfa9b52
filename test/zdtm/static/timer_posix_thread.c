// zdtm: desc: per-thread POSIX timers (SIGEV_THREAD_ID): a periodic timer signals a second thread, a one-shot one a third thread keeping its remaining time; after restore the ticks arrive at their thread only, with the same timer ids and sigval
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <pthread.h>
#include <signal.h>
#include <time.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static volatile pid_t target_tid, other_tid;
static volatile long ticks, wrong_thread, bad_value;
static volatile int go;

static void on_tick(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (gettid() != target_tid)
		wrong_thread++;
	if (si->si_code != SI_TIMER || si->si_value.sival_int != 0x7e57)
		bad_value++;
	ticks++;
}

static void *target(void *arg)
{
	(void)arg;
	target_tid = gettid();
	while (!go)
		usleep(1000);
	return NULL;
}

static void *other(void *arg)
{
	(void)arg;
	other_tid = gettid();
	while (!go)
		usleep(1000);
	return NULL;
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
	pthread_t th[2];
	timer_t periodic, oneshot;
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID };
	struct sigaction sa = { .sa_sigaction = on_tick, .sa_flags = SA_SIGINFO | SA_RESTART };
	struct itimerspec per = { { 0, 10000000 }, { 0, 10000000 } };
	struct itimerspec one = { { 0, 0 }, { 1000, 0 } };
	struct itimerspec got;
	sigset_t block;

	zt_init(argc, argv);
	sigaction(SIGRTMIN + 2, &sa, NULL);
	/* Only the target thread may take the timer's signal: the others block it. */
	sigemptyset(&block);
	sigaddset(&block, SIGRTMIN + 2);
	pthread_create(&th[0], NULL, target, NULL);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	pthread_create(&th[1], NULL, other, NULL);
	while (!target_tid || !other_tid)
		usleep(1000);
	ev.sigev_signo = SIGRTMIN + 2;
	ev.sigev_value.sival_int = 0x7e57;
	ev.sigev_notify_thread_id = target_tid;
	if (timer_create(CLOCK_MONOTONIC, &ev, &periodic)) {
		zt_fail("timer_create for thread %d", target_tid);
		return zt_finish();
	}
	ev.sigev_signo = SIGUSR2;
	ev.sigev_value.sival_int = 0x1;
	ev.sigev_notify_thread_id = other_tid;
	if (timer_create(CLOCK_REALTIME, &ev, &oneshot)) {
		zt_fail("timer_create for thread %d", other_tid);
		return zt_finish();
	}
	timer_settime(periodic, 0, &per, NULL);
	timer_settime(oneshot, 0, &one, NULL);
	sleep_ms(100);
	if (ticks < 2)
		zt_fail("only %ld ticks before checkpoint", ticks);
	zt_ready();
	zt_wait_term();
	long before = ticks;
	sleep_ms(300);
	if (ticks - before < 10)
		zt_fail("thread timer: %ld ticks in 300 ms after restore, want >= 10", ticks - before);
	if (wrong_thread)
		zt_fail("%ld ticks arrived outside thread %d", wrong_thread, target_tid);
	if (bad_value)
		zt_fail("%ld ticks had a wrong si_code or sigval", bad_value);
	if (timer_gettime(periodic, &got) || ns(got.it_interval) != 10000000)
		zt_fail("periodic timer %p: interval %lld ns", periodic, ns(got.it_interval));
	if (timer_gettime(oneshot, &got) || ns(got.it_interval) != 0 || ns(got.it_value) > 1000000000000LL ||
	    ns(got.it_value) < 990000000000LL)
		zt_fail("one-shot timer %p: value %lld ns", oneshot, ns(got.it_value));
	char buf[4096];
	char want[64];
	/* /proc names each timer's thread: it must still be that thread. */
	if (zt_read_file("/proc/self/timers", buf, sizeof(buf)) < 0)
		zt_fail("cannot read /proc/self/timers");
	snprintf(want, sizeof(want), "notify: signal/tid.%d", target_tid);
	if (!strstr(buf, want))
		zt_fail("/proc/self/timers lacks \"%s\"", want);
	snprintf(want, sizeof(want), "notify: signal/tid.%d", other_tid);
	if (!strstr(buf, want))
		zt_fail("/proc/self/timers lacks \"%s\"", want);
	go = 1;
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	return zt_finish();
}
