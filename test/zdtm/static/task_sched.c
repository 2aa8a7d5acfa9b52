// zdtm: desc: scheduling: nice 7 on the process, SCHED_BATCH with nice 3 on a second thread, SCHED_IDLE on a third; read back per thread (CPU affinity is not checked: restoring it is not in scope)
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <sys/resource.h>

struct want {
	int policy, nice;
	pid_t tid;
};

static struct want w[3];
static volatile int ready, go, bad;

static void check(const char *who, struct want *x)
{
	int pol = sched_getscheduler(0);
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);

	if (pol != x->policy || nice != x->nice) {
		dprintf(1, "FAIL: %s (tid %d): policy %d nice %d, want %d %d\n", who, gettid(), pol, nice, x->policy, x->nice);
		bad = 1;
	}
}

static void *worker(void *arg)
{
	long i = (long)arg;
	struct sched_param sp = { 0 };

	sched_setscheduler(0, w[i].policy, &sp);
	setpriority(PRIO_PROCESS, 0, w[i].nice);
	w[i].tid = gettid();
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	while (!go)
		usleep(1000);
	check(i == 1 ? "batch thread" : "idle thread", &w[i]);
	return NULL;
}


int main(int argc, char **argv)
{
	pthread_t th[3];

	zt_init(argc, argv);
	w[0] = (struct want){ SCHED_OTHER, 7, 0 };
	w[1] = (struct want){ SCHED_BATCH, 3, 0 };
	w[2] = (struct want){ SCHED_IDLE, 0, 0 };
	setpriority(PRIO_PROCESS, 0, 7);
	for (long i = 1; i < 3; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	while (ready != 2)
		usleep(1000);
	zt_ready();
	zt_wait_term();
	check("main thread", &w[0]);
	go = 1;
	for (int i = 1; i < 3; i++)
		pthread_join(th[i], NULL);
	if (bad)
		zt_fail("scheduling settings differ (see above)");
	return zt_finish();
}
