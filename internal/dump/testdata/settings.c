/* settings: a task holding one setting restore could not bring back, for
 * the refusal tests. Usage: settings DIR mdwe|thp-advised|mempolicy|thread-mempolicy|mbind|thread-slack|thread-sud|ksm|thread-cpuid;
 * writes DIR/ready (with "tid N" for the thread in DIR/info, and the
 * dispatch selector's address in DIR/sel) once set, then sleeps. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static char *dir;

static void ready(int tid)
{
	char p[4096];
	FILE *f;

	snprintf(p, sizeof(p), "%s/info", dir);
	f = fopen(p, "w");
	fprintf(f, "tid %d\n", tid);
	fclose(f);
	snprintf(p, sizeof(p), "%s/ready", dir);
	fclose(fopen(p, "w"));
}

static void *slack(void *arg)
{
	(void)arg;
	prctl(PR_SET_TIMERSLACK, 12345);
	ready(gettid());
	for (;;)
		pause();
	return NULL;
}

/* SYSCALL_DISPATCH_FILTER_ALLOW (syscalls run as usual) until the thread
 * is ready, then BLOCK: a syscall injected into the thread would raise
 * SIGSYS and kill the task. */
static volatile char selector;

static void *sud(void *arg)
{
	char p[4096];
	FILE *f;

	(void)arg;
	if (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON, 0x1000, 0x1000, (char *)&selector))
		_exit(3);
	snprintf(p, sizeof(p), "%s/sel", dir);
	f = fopen(p, "w");
	fprintf(f, "%#lx", (unsigned long)&selector);
	fclose(f);
	ready(gettid());
	selector = SYSCALL_DISPATCH_FILTER_BLOCK;
	for (;;)
		__asm__ volatile("pause");
	return NULL;
}

/* CPUID faulting (arch_prctl ARCH_SET_CPUID 0): cpuid raises SIGSEGV in
 * this thread only. */
static void *nocpuid(void *arg)
{
	(void)arg;
	if (syscall(SYS_arch_prctl, 0x1012 /* ARCH_SET_CPUID */, 0))
		_exit(3);
	ready(gettid());
	for (;;)
		pause();
	return NULL;
}

/* A thread with nothing of its own: ready, then sleeps. */
static void *slack_free(void *arg)
{
	(void)arg;
	ready(gettid());
	for (;;)
		pause();
	return NULL;
}
/* A memory policy of this thread only (set_mempolicy is per thread). */
static void *mempolicy(void *arg)
{
	unsigned long node0 = 1;
	(void)arg;
	if (syscall(SYS_set_mempolicy, 1 /* MPOL_PREFERRED */, &node0, 64))
		_exit(3);
	ready(gettid());
	for (;;)
		pause();
	return NULL;
}
int main(int argc, char **argv)
{
	pthread_t th;

	if (argc < 3)
		return 2;
	dir = argv[1];
	if (!strcmp(argv[2], "mdwe")) {
		if (prctl(65 /* PR_SET_MDWE */, 1 /* PR_MDWE_REFUSE_EXEC_GAIN */, 0, 0, 0))
			return 3;
		ready(gettid());
	} else if (!strcmp(argv[2], "thp-advised")) {
		if (prctl(PR_SET_THP_DISABLE, 1, 2 /* PR_THP_DISABLE_EXCEPT_ADVISED */, 0, 0))
			return 3;
		ready(gettid());
	} else if (!strcmp(argv[2], "mempolicy")) {
		unsigned long node0 = 1;
		if (syscall(SYS_set_mempolicy, 1 /* MPOL_PREFERRED */, &node0, 64))
			return 3;
		ready(gettid());
	} else if (!strcmp(argv[2], "thread-mempolicy")) {
		pthread_create(&th, NULL, mempolicy, NULL);
	} else if (!strcmp(argv[2], "mbind")) {
		/* The policy of one mapping (mbind), not of a thread; in a
		 * process with a second thread, whose numa_maps shows it too. */
		unsigned long node0 = 1;
		long pg = sysconf(_SC_PAGESIZE);
		char *m = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		FILE *f;
		char p[4096];
		if (m == MAP_FAILED || syscall(SYS_mbind, m + pg, pg, 1 /* MPOL_PREFERRED */, &node0, 64, 0))
			return 3;
		m[pg] = 1;
		snprintf(p, sizeof(p), "%s/mbind", dir);
		f = fopen(p, "w");
		fprintf(f, "%#lx", (unsigned long)(m + pg));
		fclose(f);
		pthread_create(&th, NULL, slack_free, NULL);
	} else if (!strcmp(argv[2], "thread-slack")) {
		pthread_create(&th, NULL, slack, NULL);
	} else if (!strcmp(argv[2], "thread-sud")) {
		pthread_create(&th, NULL, sud, NULL);
	} else if (!strcmp(argv[2], "thread-cpuid")) {
		pthread_create(&th, NULL, nocpuid, NULL);
	} else if (!strcmp(argv[2], "ksm")) {
		if (prctl(67 /* PR_SET_MEMORY_MERGE */, 1, 0, 0, 0))
			return 3;
		ready(gettid());
	} else {
		return 2;
	}
	for (;;)
		pause();
}
