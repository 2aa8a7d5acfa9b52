/* Sets up state the parasite must report, writes its own view of it to
 * argv[1], then checks a memory pattern and bumps a counter in argv[2]
 * every 10 ms, forever. Exits 3 if the pattern ever changes. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#define PATLEN (1 << 20)

static unsigned char *pattern;
static volatile int ready;
static FILE *out;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned char pat(unsigned long i) { return (unsigned char)(i * 7 + (i >> 12)); }

static void handler(int sig) { (void)sig; }

static void report_self(const char *who, int altsize)
{
	stack_t ss = { .ss_sp = malloc(altsize), .ss_size = altsize };
	unsigned long tidaddr = 0;

	if (sigaltstack(&ss, NULL))
		exit(10);
	if (sigaltstack(NULL, &ss))
		exit(11);
	prctl(PR_GET_TID_ADDRESS, &tidaddr);
	/* A timer slack of each thread's own, and what it says of itself. */
	if (prctl(PR_SET_TIMERSLACK, 40000 + altsize, 0, 0, 0))
		exit(12);
	pthread_mutex_lock(&mu);
	fprintf(out, "thread %s %ld %#lx %#lx %d %#lx %ld %ld %ld\n", who, (long)syscall(SYS_gettid), tidaddr,
		(unsigned long)ss.ss_sp, ss.ss_flags, (unsigned long)ss.ss_size,
		(long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0), (long)prctl(PR_GET_SECUREBITS, 0, 0, 0, 0),
		(long)syscall(SYS_arch_prctl, 0x1011 /* ARCH_GET_CPUID */, 0));
	pthread_mutex_unlock(&mu);
}

static void *thread_main(void *arg)
{
	report_self("other", (int)(long)arg);
	__sync_fetch_and_add(&ready, 1);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct itimerval real = { { 500, 0 }, { 1000, 0 } }, virt = { { 0, 250000 }, { 2000, 0 } };
	struct sigevent sev;
	struct itimerspec its = { { 3, 0 }, { 3000, 0 } };
	timer_t timer;
	pthread_t th[2];
	char tmp[4096];
	int fd, i;
	unsigned long counter = 0;

	if (argc != 3)
		return 2;
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	out = fopen(tmp, "w");
	if (!out)
		return 2;
	fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 2;

	umask(027);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaddset(&sa.sa_mask, SIGTERM);
	if (sigaction(SIGUSR1, &sa, NULL))
		return 4;
	if (setitimer(ITIMER_REAL, &real, NULL) || setitimer(ITIMER_VIRTUAL, &virt, NULL))
		return 5;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) || timer_settime(timer, 0, &its, NULL))
		return 6;
	prctl(PR_SET_PDEATHSIG, SIGHUP);
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	pattern = mmap(NULL, PATLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pattern == MAP_FAILED)
		return 7;
	for (i = 0; i < PATLEN; i++)
		pattern[i] = pat(i);

	fprintf(out, "sigusr1 %#lx\n", (unsigned long)handler);
	fprintf(out, "pattern %#lx %d\n", (unsigned long)pattern, PATLEN);
	report_self("main", 3 * 8192);
	for (i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, thread_main, (void *)(long)(4 * 8192 + i * 8192));
	while (ready < 2)
		usleep(1000);
	fclose(out);
	rename(tmp, argv[1]);

	for (;;) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		for (i = 0; i < PATLEN; i += 509)
			if (pattern[i] != pat(i))
				return 3;
		counter++;
		if (pwrite(fd, &counter, sizeof(counter), 0) != sizeof(counter))
			return 8;
	}
}
