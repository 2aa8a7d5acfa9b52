/* VM test target: a multi-threaded program. argv[1] is the log file,
 * argv[2] the number of threads besides the main one (default 4).
 *
 * Every thread (the main one too, as thread 0) keeps state of its own and
 * checks it every 50 ms: its TID (gettid must keep answering the TID it was
 * born with), a thread-local variable, a heap buffer and a stack buffer
 * filled with a pattern of its own, and its signal mask (each thread blocks
 * a different signal). It appends "t<i> <tid> ok <n>" (or "t<i> <tid> BAD
 * <n> <what>") to the log with one write. The label of each thread is
 * checked from outside (/proc/PID/task/TID/attr/current): the threads hold
 * no fd on /proc, so a dump never finds one half-open.
 *
 * Built static for the VM. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BUF (256 << 10)
#define STK 4096

static int logfd;
static __thread unsigned long tls_tag;

static unsigned char pat(int i, size_t off) { return (unsigned char)(off * 13 + i * 41 + 7); }

/* the signal thread i blocks (besides the ones every thread inherits) */
static int own_signal(int i) { return SIGRTMIN + 1 + i; }

static void *run(void *arg)
{
	int i = (int)(long)arg;
	pid_t tid = syscall(SYS_gettid);
	unsigned char *heap = malloc(BUF);
	unsigned char stack[STK];
	sigset_t set, cur;

	if (!heap)
		exit(2);
	tls_tag = 0x5eed0000UL + i;
	for (size_t o = 0; o < BUF; o++)
		heap[o] = pat(i, o);
	for (size_t o = 0; o < STK; o++)
		stack[o] = pat(i + 100, o);
	sigemptyset(&set);
	sigaddset(&set, own_signal(i));
	pthread_sigmask(SIG_BLOCK, &set, 0);

	for (unsigned long n = 0;; n++) {
		const char *bad = 0;
		if (syscall(SYS_gettid) != tid)
			bad = "tid";
		else if (tls_tag != 0x5eed0000UL + i)
			bad = "tls";
		for (size_t o = 0; !bad && o < BUF; o += 509)
			if (heap[o] != pat(i, o))
				bad = "heap";
		for (size_t o = 0; !bad && o < STK; o += 61)
			if (stack[o] != pat(i + 100, o))
				bad = "stack";
		if (!bad) {
			pthread_sigmask(SIG_BLOCK, 0, &cur);
			for (int k = 0; k < 8; k++)
				if (sigismember(&cur, own_signal(k)) != (k == i))
					bad = "sigmask";
		}
		char b[96];
		int l = bad ? snprintf(b, sizeof b, "t%d %d BAD %lu %s\n", i, (int)tid, n, bad)
			    : snprintf(b, sizeof b, "t%d %d ok %lu\n", i, (int)tid, n);
		if (write(logfd, b, l) != l)
			exit(3);
		struct timespec ts = { 0, 50000000 };
		nanosleep(&ts, 0);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 4;
	if (argc < 2 || n < 1 || n > 7)
		return 2;
	logfd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0666);
	if (logfd < 0)
		return 2;
	for (int i = 1; i <= n; i++) {
		pthread_t t;
		if (pthread_create(&t, 0, run, (void *)(long)i))
			return 4;
	}
	run(0);
}
