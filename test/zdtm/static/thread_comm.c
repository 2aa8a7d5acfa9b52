// zdtm: desc: task names: prctl(PR_SET_NAME) on the main thread and a different name per thread (pthread_setname_np), read back with prctl and /proc/self/task/TID/comm
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <pthread.h>
#include <sys/prctl.h>

#define NTHR 3
static volatile int ready, go;
static pid_t tids[NTHR];
static volatile int bad;

static void *worker(void *arg)
{
	long i = (long)arg;
	char name[16], want[16];

	snprintf(want, sizeof(want), "zdtm-worker-%ld", i);
	prctl(PR_SET_NAME, want);
	tids[i] = gettid();
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	while (!go)
		usleep(1000);
	prctl(PR_GET_NAME, name);
	if (strcmp(name, want)) {
		dprintf(1, "FAIL: thread %ld: name %s, want %s\n", i, name, want);
		bad = 1;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[NTHR];
	char name[32], path[64];

	zt_init(argc, argv);
	prctl(PR_SET_NAME, "zdtm main comm");
	for (long i = 0; i < NTHR; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	while (ready != NTHR)
		usleep(1000);
	zt_ready();
	zt_wait_term();
	prctl(PR_GET_NAME, name);
	if (strcmp(name, "zdtm main comm"))
		zt_fail("main name %s", name);
	for (int i = 0; i < NTHR; i++) {
		char want[16];

		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", tids[i]);
		snprintf(want, sizeof(want), "zdtm-worker-%d", i);
		if (zt_read_file(path, name, sizeof(name)) < 0 || strncmp(name, want, strlen(want)) ||
		    name[strlen(want)] != '\n')
			zt_fail("%s is %s, want %s", path, name, want);
	}
	go = 1;
	for (int i = 0; i < NTHR; i++)
		pthread_join(th[i], NULL);
	if (bad)
		zt_fail("a thread's own name check failed");
	return zt_finish();
}
