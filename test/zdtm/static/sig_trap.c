// zdtm: desc: SIGTRAP state, which the restore's own traps could disturb: a SA_SIGINFO handler in the process, SIG_IGN in a child, a shared SIGTRAP queued with a value and a thread-directed one in a second thread, all blocked; after restore the actions, masks and both pending SIGTRAPs with their values are as they were, and a raised SIGTRAP reaches the handler
// zdtm: modes: restore snapshot twice predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIT(s) (1ULL << ((s) - 1))

static volatile sig_atomic_t handled;
static volatile int thread_go;
static volatile int thread_bad;

static void on_trap(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code == SI_TKILL)
		handled++;
}

static unsigned long long status_mask(const char *path, const char *key)
{
	char v[64];

	if (zt_status_field(path, key, v, sizeof(v)))
		return ~0ULL;
	return strtoull(v, NULL, 16);
}

static int take(int val)
{
	sigset_t s;
	siginfo_t si;
	struct timespec zero = { 0, 0 };

	sigemptyset(&s);
	sigaddset(&s, SIGTRAP);
	if (sigtimedwait(&s, &si, &zero) != SIGTRAP)
		return -1;
	return si.si_code == SI_QUEUE && si.si_value.sival_int == val ? 0 : -2;
}

static void *worker(void *arg)
{
	siginfo_t si;
	char path[64];

	(void)arg;
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGTRAP;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = 9;
	syscall(SYS_rt_tgsigqueueinfo, getpid(), (pid_t)syscall(SYS_gettid), SIGTRAP, &si);
	__atomic_store_n(&thread_go, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&thread_go, __ATOMIC_SEQ_CST) != 2)
		usleep(1000);
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)syscall(SYS_gettid));
	if (status_mask(path, "SigPnd") != BIT(SIGTRAP)) {
		dprintf(1, "FAIL: thread SigPnd is %llx, want %llx\n", status_mask(path, "SigPnd"), BIT(SIGTRAP));
		thread_bad = 1;
	}
	if (take(9)) {
		dprintf(1, "FAIL: thread lost its SIGTRAP with value 9\n");
		thread_bad = 1;
	}
	return NULL;
}

static void child_check(int sig)
{
	struct sigaction cur;

	(void)sig;
	sigaction(SIGTRAP, NULL, &cur);
	_exit(cur.sa_handler == SIG_IGN ? 0 : 3);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = on_trap, .sa_flags = SA_SIGINFO | SA_RESTART }, cur;
	sigset_t blocked;
	pthread_t th;
	pid_t child;
	int status;

	zt_init(argc, argv);
	child = fork();
	if (child == 0) {
		signal(SIGTRAP, SIG_IGN);
		signal(SIGUSR1, child_check);
		for (;;)
			pause();
	}
	sigaction(SIGTRAP, &sa, NULL);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTRAP);
	sigprocmask(SIG_BLOCK, &blocked, NULL);
	if (pthread_create(&th, NULL, worker, NULL))
		return 1;
	while (!__atomic_load_n(&thread_go, __ATOMIC_SEQ_CST))
		usleep(1000);
	sigqueue(getpid(), SIGTRAP, (union sigval){ .sival_int = 7 });
	/* The child has set SIG_IGN once SigIgn says so. */
	for (;;) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/status", child);
		if (status_mask(path, "SigIgn") & BIT(SIGTRAP))
			break;
		usleep(1000);
	}
	zt_ready();
	zt_wait_term();

	sigaction(SIGTRAP, NULL, &cur);
	if (cur.sa_sigaction != on_trap || !(cur.sa_flags & SA_SIGINFO) || !(cur.sa_flags & SA_RESTART))
		zt_fail("SIGTRAP action is %p flags %#x, want %p with SA_SIGINFO|SA_RESTART", (void *)cur.sa_sigaction,
			cur.sa_flags, (void *)on_trap);
	if (status_mask("/proc/self/status", "ShdPnd") != BIT(SIGTRAP))
		zt_fail("ShdPnd is %llx, want %llx", status_mask("/proc/self/status", "ShdPnd"), BIT(SIGTRAP));
	if (take(7))
		zt_fail("the shared SIGTRAP with value 7 is lost");
	__atomic_store_n(&thread_go, 2, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	if (thread_bad)
		zt_fail("the second thread's SIGTRAP differs (see above)");
	sigprocmask(SIG_UNBLOCK, &blocked, NULL);
	raise(SIGTRAP);
	if (handled != 1)
		zt_fail("a raised SIGTRAP reached the handler %d times, want 1", (int)handled);
	kill(child, SIGUSR1);
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		zt_fail("child: SIGTRAP is no longer ignored (status %#x)", status);
	return zt_finish();
}
