// zdtm: desc: real-time scheduling per thread: SCHED_FIFO 10 with SCHED_RESET_ON_FORK on the main thread, SCHED_RR 20 on a second thread, SCHED_OTHER|SCHED_RESET_ON_FORK with nice 5 on a third; policy, flag, rt priority and nice read back per thread
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <sys/resource.h>

struct want {
	const char *who;
	int policy, prio, nice;
};

static struct want w[3] = {
	{ "main thread", SCHED_FIFO | SCHED_RESET_ON_FORK, 10, 0 },
	{ "rr thread", SCHED_RR, 20, 0 },
	{ "other thread", SCHED_OTHER | SCHED_RESET_ON_FORK, 0, 5 },
};
static volatile int ready, go, bad, setup_bad;

static int set(struct want *x)
{
	struct sched_param sp = { .sched_priority = x->prio };

	if (sched_setscheduler(0, x->policy, &sp))
		return -1;
	if (x->nice && setpriority(PRIO_PROCESS, 0, x->nice))
		return -1;
	return 0;
}

static void check(struct want *x)
{
	struct sched_param sp = { 0 };
	int pol = sched_getscheduler(0);

	sched_getparam(0, &sp);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);

	if (pol != x->policy || sp.sched_priority != x->prio || nice != x->nice) {
		dprintf(1, "FAIL: %s (tid %d): policy %#x prio %d nice %d, want %#x %d %d\n", x->who, gettid(), pol,
			sp.sched_priority, nice, x->policy, x->prio, x->nice);
		bad = 1;
	}
}

static void *worker(void *arg)
{
	long i = (long)arg;

	if (set(&w[i]))
		setup_bad = 1;
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	while (!go)
		usleep(1000);
	check(&w[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[3];

	zt_init(argc, argv);
	for (long i = 1; i < 3; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	while (ready != 2)
		usleep(1000);
	if (set(&w[0]) || setup_bad) {
		zt_fail("cannot set the scheduling policies (needs CAP_SYS_NICE and RT runtime)");
		go = 1;
		return zt_finish();
	}
	zt_ready();
	zt_wait_term();
	check(&w[0]);
	go = 1;
	for (int i = 1; i < 3; i++)
		pthread_join(th[i], NULL);
	if (bad)
		zt_fail("scheduling settings differ (see above)");
	return zt_finish();
}
