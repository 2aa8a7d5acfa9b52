// zdtm: desc: SIGIO kept: a pipe with O_ASYNC owned by the task itself with F_SETSIG SIGUSR1 (the handler checks si_fd), one owned by a child thread-group member as a thread (F_OWNER_TID) and one owned by the process group; after restore each owner, signal and flag reads back and a write raises the signal with the reader's fd
// zdtm: modes: restore snapshot twice predump criu-dump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>

static volatile sig_atomic_t got_sig, got_fd = -1, got_code;
static volatile pid_t thread_tid;

static void on_sigusr1(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_sig = sig;
	got_fd = si->si_fd;
	got_code = si->si_code;
}

static void *idle(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* SIGIO for it stays pending */
	thread_tid = syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

static int own(int fd, int type, pid_t pid, int sig)
{
	struct f_owner_ex o = {.type = type, .pid = pid};
	if (fcntl(fd, F_SETOWN_EX, &o) || (sig && fcntl(fd, F_SETSIG, sig)))
		return -1;
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
}

static void expect_owner(const char *name, int fd, int type, pid_t pid, int sig)
{
	struct f_owner_ex o;
	if (fcntl(fd, F_GETOWN_EX, &o) || o.type != type || o.pid != pid)
		zt_fail("%s: owner %d/%d, want %d/%d", name, o.type, o.pid, type, pid);
	if (fcntl(fd, F_GETSIG) != sig)
		zt_fail("%s: F_GETSIG %d, want %d", name, fcntl(fd, F_GETSIG), sig);
	if (!(fcntl(fd, F_GETFL) & O_ASYNC))
		zt_fail("%s: O_ASYNC lost (flags 0%o)", name, fcntl(fd, F_GETFL));
}

int main(int argc, char **argv)
{
	int self[2], thr[2], grp[2];
	pthread_t th;
	struct sigaction sa = {.sa_sigaction = on_sigusr1, .sa_flags = SA_SIGINFO};

	zt_init(argc, argv);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGIO, SIG_IGN);
	if (pthread_create(&th, NULL, idle, NULL))
		return 1;
	while (!thread_tid)
		usleep(1000);
	if (pipe(self) || pipe(thr) || pipe(grp))
		return 1;
	/* One fd on it: when several fds share a file, which one's number
	 * SIGIO reports (the last to set O_ASYNC) is not visible in /proc. */
	dup2(self[0], 40);
	close(self[0]);
	if (own(40, F_OWNER_PID, getpid(), SIGUSR1) || own(thr[0], F_OWNER_TID, thread_tid, 0) ||
	    own(grp[0], F_OWNER_PGRP, getpgrp(), SIGUSR2))
		zt_fail("setting owners: %s", strerror(errno));
	signal(SIGUSR2, SIG_IGN);
	zt_ready();
	zt_wait_term();
	expect_owner("self pipe", 40, F_OWNER_PID, getpid(), SIGUSR1);
	expect_owner("thread pipe", thr[0], F_OWNER_TID, thread_tid, 0);
	expect_owner("group pipe", grp[0], F_OWNER_PGRP, getpgrp(), SIGUSR2);
	if (write(self[1], "x", 1) != 1)
		zt_fail("write");
	for (int i = 0; i < 1000 && !got_sig; i++)
		usleep(1000);
	if (got_sig != SIGUSR1 || got_fd != 40 || got_code != POLL_IN)
		zt_fail("SIGIO after restore: signal %d fd %d code %d, want %d fd 40 code %d", got_sig, got_fd, got_code, SIGUSR1, POLL_IN);
	return zt_finish();
}
