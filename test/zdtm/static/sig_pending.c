// zdtm: desc: blocked masks (process and a second thread) and pending signals: thread-directed and shared, standard and queued real-time with values, order and siginfo checked
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile int thread_go;
static volatile int thread_bad;
static pid_t main_tid;

static int rt_tgsigqueue(pid_t tgid, pid_t tid, int sig, int val)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = val;
	return syscall(SYS_rt_tgsigqueueinfo, tgid, tid, sig, &si);
}

static unsigned long long status_mask(const char *path, const char *key)
{
	char v[64];

	if (zt_status_field(path, key, v, sizeof(v)))
		return ~0ULL;
	return strtoull(v, NULL, 16);
}

#define BIT(s) (1ULL << ((s) - 1))

static void *worker(void *arg)
{
	sigset_t m;
	siginfo_t si;
	struct timespec zero = { 0, 0 };
	char path[64];

	(void)arg;
	sigemptyset(&m);
	sigaddset(&m, SIGWINCH);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIGRTMIN + 1);
	sigaddset(&m, SIGRTMIN + 2);
	sigaddset(&m, SIGRTMIN + 5);
	pthread_sigmask(SIG_SETMASK, &m, NULL);
	syscall(SYS_tgkill, getpid(), gettid(), SIGWINCH);
	rt_tgsigqueue(getpid(), gettid(), SIGRTMIN + 5, 55);
	__atomic_store_n(&thread_go, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&thread_go, __ATOMIC_SEQ_CST) != 2)
		usleep(1000);
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", gettid());
	if (status_mask(path, "SigPnd") != (BIT(SIGWINCH) | BIT(SIGRTMIN + 5))) {
		dprintf(1, "FAIL: thread SigPnd is %llx\n", status_mask(path, "SigPnd"));
		thread_bad = 1;
	}
	sigset_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	for (int s = 1; s < _NSIG; s++)
		if (sigismember(&cur, s) != sigismember(&m, s)) {
			dprintf(1, "FAIL: thread mask bit %d differs\n", s);
			thread_bad = 1;
		}
	sigemptyset(&cur);
	sigaddset(&cur, SIGWINCH);
	if (sigtimedwait(&cur, &si, &zero) != SIGWINCH || si.si_pid != getpid()) {
		dprintf(1, "FAIL: thread lost its pending SIGWINCH (si_code %d)\n", si.si_code);
		thread_bad = 1;
	}
	sigemptyset(&cur);
	sigaddset(&cur, SIGRTMIN + 5);
	if (sigtimedwait(&cur, &si, &zero) != SIGRTMIN + 5 || si.si_value.sival_int != 55) {
		dprintf(1, "FAIL: thread lost its queued SIGRTMIN+5\n");
		thread_bad = 1;
	}
	return NULL;
}

static void expect(int sig, int code, int val, const char *what)
{
	sigset_t s;
	siginfo_t si;
	struct timespec zero = { 0, 0 };

	sigemptyset(&s);
	sigaddset(&s, sig);
	if (sigtimedwait(&s, &si, &zero) != sig) {
		zt_fail("%s: signal %d not pending", what, sig);
		return;
	}
	/* Kernels differ on si_code for tgkill of a blocked signal: only queued ones are exact. */
	if ((code == SI_QUEUE && (si.si_code != code || si.si_value.sival_int != val)) || si.si_pid != getpid())
		zt_fail("%s: si_code %d value %d pid %d, want %d %d %d", what, si.si_code, si.si_value.sival_int,
			si.si_pid, code, val, getpid());
}

int main(int argc, char **argv)
{
	sigset_t blocked, cur;
	pthread_t th;

	zt_init(argc, argv);
	main_tid = gettid();
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGUSR1);
	sigaddset(&blocked, SIGUSR2);
	sigaddset(&blocked, SIGRTMIN + 1);
	sigaddset(&blocked, SIGRTMIN + 2);
	sigaddset(&blocked, SIGPIPE);
	sigprocmask(SIG_SETMASK, &blocked, NULL);
	pthread_create(&th, NULL, worker, NULL);
	while (!__atomic_load_n(&thread_go, __ATOMIC_SEQ_CST))
		usleep(1000);

	raise(SIGUSR1);			/* thread-directed, SI_TKILL */
	kill(getpid(), SIGUSR2);	/* shared, SI_USER */
	for (int i = 1; i <= 3; i++)	/* shared queue, in order */
		sigqueue(getpid(), SIGRTMIN + 1, (union sigval){ .sival_int = i });
	rt_tgsigqueue(getpid(), main_tid, SIGRTMIN + 2, 10);
	rt_tgsigqueue(getpid(), main_tid, SIGRTMIN + 2, 11);
	zt_ready();
	zt_wait_term();

	sigprocmask(SIG_SETMASK, NULL, &cur);
	for (int s = 1; s < _NSIG; s++)
		if (sigismember(&cur, s) != sigismember(&blocked, s))
			zt_fail("blocked mask bit %d differs", s);
	unsigned long long thr = status_mask("/proc/thread-self/status", "SigPnd");
	unsigned long long shd = status_mask("/proc/self/status", "ShdPnd");
	if (thr != (BIT(SIGUSR1) | BIT(SIGRTMIN + 2)))
		zt_fail("thread pending (SigPnd) is %llx, want %llx", thr, BIT(SIGUSR1) | BIT(SIGRTMIN + 2));
	if (shd != (BIT(SIGUSR2) | BIT(SIGRTMIN + 1)))
		zt_fail("shared pending (ShdPnd) is %llx, want %llx", shd, BIT(SIGUSR2) | BIT(SIGRTMIN + 1));
	expect(SIGUSR1, SI_TKILL, 0, "raised SIGUSR1");
	expect(SIGUSR2, SI_USER, 0, "killed SIGUSR2");
	for (int i = 1; i <= 3; i++)
		expect(SIGRTMIN + 1, SI_QUEUE, i, "queued SIGRTMIN+1");
	expect(SIGRTMIN + 2, SI_QUEUE, 10, "thread-queued SIGRTMIN+2 #1");
	expect(SIGRTMIN + 2, SI_QUEUE, 11, "thread-queued SIGRTMIN+2 #2");
	sigset_t p;
	sigpending(&p);
	for (int s = 1; s < _NSIG; s++)
		if (sigismember(&p, s))
			zt_fail("signal %d pending after draining", s);
	__atomic_store_n(&thread_go, 2, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	if (thread_bad)
		zt_fail("second thread's mask or pending signals differ (see above)");
	return zt_finish();
}
