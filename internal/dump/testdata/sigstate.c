/* Signal state for dump tests: a SIGUSR1 handler (SA_RESTART, mask SIGUSR2),
 * SIGUSR2 ignored, an ITIMER_REAL of 100 s, a POSIX timer (CLOCK_MONOTONIC,
 * SIGRTMIN, 50 s), a sigaltstack, one extra thread with its own altstack,
 * SIGQUIT blocked and pending; the main thread waits in sigsuspend with
 * SIGWINCH blocked too for the time of the call. Writes DIR/ready with what
 * it set. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void on_usr1(int s) { (void)s; }
static char altstack[65536], thread_altstack[32768];
static volatile long thread_sas;

static void *thread(void *arg) {
	(void)arg;
	stack_t ss = {.ss_sp = thread_altstack, .ss_size = sizeof thread_altstack};
	sigaltstack(&ss, 0);
	thread_sas = 1;
	for (;;) pause();
}

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &sa, 0);
	signal(SIGUSR2, SIG_IGN);

	struct itimerval it = {{100, 0}, {100, 0}};
	setitimer(ITIMER_REAL, &it, 0);
	signal(SIGALRM, on_usr1);

	timer_t tid;
	struct sigevent ev;
	memset(&ev, 0, sizeof ev);
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGRTMIN;
	ev.sigev_value.sival_ptr = (void *)0x1234;
	timer_create(CLOCK_MONOTONIC, &ev, &tid);
	struct itimerspec its = {{50, 0}, {50, 0}};
	timer_settime(tid, 0, &its, 0);

	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	sigaltstack(&ss, 0);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, 0);
	kill(getpid(), SIGQUIT);

	pthread_t t;
	pthread_create(&t, 0, thread, 0);
	while (!thread_sas) usleep(1000);

	char path[4096], tmp[4096];
	snprintf(tmp, sizeof tmp, "%s/ready.tmp", argv[1]);
	FILE *f = fopen(tmp, "w");
	fprintf(f, "%lx %lx %lx %lx\n", (unsigned long)on_usr1, (unsigned long)altstack,
		(unsigned long)thread_altstack, (unsigned long)(long)tid);
	fclose(f);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	rename(tmp, path);
	sigset_t during = set;
	sigaddset(&during, SIGWINCH);
	for (;;) sigsuspend(&during);
}
