// zdtm: desc: 16 threads, each with its own TLS values, stack pattern and TID; every thread checks its own state after SIGTERM
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>

#define NTHR 16
static __thread unsigned long tls_value;
static __thread char tls_buf[256];
static volatile int started, go;
static volatile int bad;
static pid_t tids[NTHR];

static void *worker(void *arg)
{
	long i = (long)arg;
	unsigned char stack_data[4096];

	tls_value = 0x1000 + i * 0x10001;
	zt_pattern_fill(tls_buf, sizeof(tls_buf), 100 + i);
	zt_pattern_fill(stack_data, sizeof(stack_data), 200 + i);
	tids[i] = gettid();
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&go, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &go, FUTEX_WAIT, 0, NULL, NULL, 0);
	if (tls_value != 0x1000 + (unsigned long)i * 0x10001) {
		dprintf(1, "FAIL: thread %ld: TLS value 0x%lx\n", i, tls_value);
		__atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST);
	}
	if (zt_pattern_check(tls_buf, sizeof(tls_buf), 100 + i) >= 0 ||
	    zt_pattern_check(stack_data, sizeof(stack_data), 200 + i) >= 0) {
		dprintf(1, "FAIL: thread %ld: TLS or stack pattern differs\n", i);
		__atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST);
	}
	if (gettid() != tids[i]) {
		dprintf(1, "FAIL: thread %ld: TID %d, was %d\n", i, gettid(), tids[i]);
		__atomic_add_fetch(&bad, 1, __ATOMIC_SEQ_CST);
	}
	return (void *)(i + 1);
}

int main(int argc, char **argv)
{
	pthread_t th[NTHR];

	zt_init(argc, argv);
	tls_value = 0xfeed;
	for (long i = 0; i < NTHR; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i)) {
			zt_fail("pthread_create %ld", i);
			return 1;
		}
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) != NTHR)
		usleep(1000);
	zt_ready();
	zt_wait_term();
	__atomic_store_n(&go, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &go, FUTEX_WAKE, NTHR, NULL, NULL, 0);
	for (long i = 0; i < NTHR; i++) {
		void *ret;

		if (pthread_join(th[i], &ret) || ret != (void *)(i + 1))
			zt_fail("thread %ld: join returned %p", i, ret);
	}
	if (tls_value != 0xfeed)
		zt_fail("main thread TLS value 0x%lx", tls_value);
	if (bad)
		zt_fail("%d thread checks failed", bad);
	return zt_finish();
}
