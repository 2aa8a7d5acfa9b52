// zdtm: desc: rseq: glibc's registration survives in the main thread and a second thread (re-registering gives EBUSY), and the rseq area's cpu_id follows sched_getcpu across forced migrations
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: needs: rseq_ptrace
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/rseq.h>
#include <sys/syscall.h>

#define RSEQ_SIG_X86 0x53053053

static struct rseq *area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* 0 when the kernel still has exactly this registration. */
static int registered(void)
{
	unsigned len = __rseq_size < 32 ? 32 : __rseq_size;
	long r = syscall(SYS_rseq, area(), len, 0, RSEQ_SIG_X86);

	if (r == 0) {
		/* It was not registered: we just did it. */
		syscall(SYS_rseq, area(), len, 1 /* RSEQ_FLAG_UNREGISTER */, RSEQ_SIG_X86);
		return -1;
	}
	return errno == EBUSY ? 0 : -errno;
}

static int follow_cpus(const char *who)
{
	cpu_set_t all, one;
	int bad = 0;

	sched_getaffinity(0, sizeof(all), &all);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		sched_setaffinity(0, sizeof(one), &one);
		for (int i = 0; i < 100; i++) {
			int c = sched_getcpu();
			unsigned id = __atomic_load_n(&area()->cpu_id, __ATOMIC_RELAXED);
			if (c != cpu || (int)id != cpu) {
				dprintf(1, "FAIL: %s: pinned to cpu %d, sched_getcpu %d, rseq cpu_id %u\n", who, cpu, c, id);
				bad = 1;
				break;
			}
		}
	}
	sched_setaffinity(0, sizeof(all), &all);
	return bad;
}

static volatile int go;
static volatile int thread_bad = -1;

static void *worker(void *arg)
{
	(void)arg;
	while (!go)
		usleep(1000);
	int bad = registered() != 0;
	if (bad)
		dprintf(1, "FAIL: thread: rseq registration lost\n");
	thread_bad = bad | follow_cpus("thread");
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th;

	zt_init(argc, argv);
	if (__rseq_size == 0) {
		zt_fail("glibc did not register rseq (GLIBC_TUNABLES=glibc.pthread.rseq=0?)");
		return 1;
	}
	if (registered())
		zt_fail("rseq not registered before checkpoint");
	follow_cpus("main before");
	pthread_create(&th, NULL, worker, NULL);
	zt_ready();
	zt_wait_term();
	if (registered())
		zt_fail("main thread: rseq registration lost");
	if (follow_cpus("main"))
		zt_fail("main thread: rseq cpu_id does not follow the CPU");
	go = 1;
	pthread_join(th, NULL);
	if (thread_bad)
		zt_fail("second thread's rseq checks failed");
	return zt_finish();
}
