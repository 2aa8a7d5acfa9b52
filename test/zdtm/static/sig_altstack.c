// zdtm: desc: sigaltstack of the main thread and of a second thread (SS_AUTODISARM); settings compared and SA_ONSTACK handlers really run on them
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

#define SZ (64 * 1024)
static char main_stack[SZ], thread_stack[SZ];
static char *volatile where;
static volatile int thread_state;

static void on_usr1(int sig)
{
	(void)sig;
	where = __builtin_frame_address(0);
}

static int on(char *stk)
{
	return where >= stk && where < stk + SZ;
}

static void check(const char *who, char *stk, int flags)
{
	stack_t ss;

	if (sigaltstack(NULL, &ss)) {
		zt_fail("%s: sigaltstack read", who);
		return;
	}
	if (ss.ss_sp != stk || ss.ss_size != SZ || ss.ss_flags != flags)
		zt_fail("%s: altstack %p/%zu/0x%x, want %p/%d/0x%x", who, ss.ss_sp, ss.ss_size, ss.ss_flags, (void *)stk,
			SZ, flags);
	where = NULL;
	syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
	if (!on(stk))
		zt_fail("%s: handler ran at %p, not on the alternate stack", who, (void *)where);
}

static void *worker(void *arg)
{
	stack_t ss = { .ss_sp = thread_stack, .ss_size = SZ, .ss_flags = SS_AUTODISARM };

	(void)arg;
	if (sigaltstack(&ss, NULL))
		dprintf(1, "FAIL: thread sigaltstack SS_AUTODISARM\n");
	thread_state = 1;
	while (thread_state != 2)
		usleep(1000);
	check("thread", thread_stack, SS_AUTODISARM);
	return NULL;
}

int main(int argc, char **argv)
{
	stack_t ss = { .ss_sp = main_stack, .ss_size = SZ };
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_ONSTACK };
	pthread_t th;

	zt_init(argc, argv);
	sigaction(SIGUSR1, &sa, NULL);
	if (sigaltstack(&ss, NULL))
		zt_fail("sigaltstack");
	pthread_create(&th, NULL, worker, NULL);
	while (thread_state != 1)
		usleep(1000);
	zt_ready();
	zt_wait_term();
	check("main", main_stack, 0);
	thread_state = 2;
	pthread_join(th, NULL);
	return zt_finish();
}
