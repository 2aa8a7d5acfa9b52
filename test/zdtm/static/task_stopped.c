// zdtm: desc: job-control stops: children stopped by SIGTSTP and SIGSTOP (and one with 3 threads by SIGTSTP) stay stopped across checkpoint (/proc state T), the parent's waitpid(WUNTRACED) reports each one's own stop signal, and SIGCONT resumes them
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

/* task_stopped_tty includes this file with its own signals. */
#ifndef STOP_SIGS
#define STOP_SIGS {SIGTSTP, SIGSTOP, SIGTSTP}
#endif

static const int stop_sigs[] = STOP_SIGS;
#define NCHILD ((int)(sizeof(stop_sigs) / sizeof(stop_sigs[0])))
static int alive[2];
static int started;

static char state_of(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (zt_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return '?';
	return p[2];
}

static void *idle(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	for (;;)
		pause();
	return NULL;
}

/* A child in a process group of its own: the group is not orphaned (its
 * parent is in another group of the same session), so SIGTSTP, SIGTTIN and
 * SIGTTOU stop it. The last child has 3 threads. Once continued it says so
 * through the pipe. */
static void child(int i)
{
	char c = 'a' + i;

	setpgid(0, 0);
	if (i == NCHILD - 1) {
		pthread_t t;
		for (int k = 0; k < 2; k++)
			if (pthread_create(&t, NULL, idle, NULL))
				_exit(2);
		/* Stop once both threads run their own code with their own mask. */
		while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < 2)
			usleep(1000);
	}
	close(alive[0]);
	/* Stopped here; SIGCONT ends the stop and the write reports it. */
	raise(stop_sigs[i]);
	if (write(alive[1], &c, 1) != 1)
		_exit(3);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	pid_t kids[NCHILD];
	siginfo_t si;

	zt_init(argc, argv);
	if (pipe(alive))
		return 1;
	for (int i = 0; i < NCHILD; i++) {
		kids[i] = fork();
		if (kids[i] < 0)
			return 1;
		if (!kids[i])
			child(i);
		/* WNOWAIT: the stop stays reportable, for the check after restore. */
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, kids[i], &si, WSTOPPED | WNOWAIT) || si.si_code != CLD_STOPPED || si.si_status != stop_sigs[i])
			zt_fail("setup: child %d did not stop with signal %d (code %d status %d)", kids[i], stop_sigs[i], si.si_code, si.si_status);
		for (int k = 0; k < 5000 && state_of(kids[i]) != 'T'; k++)
			usleep(1000);
	}
	close(alive[1]);
	zt_ready();
	zt_wait_term();

	for (int i = 0; i < NCHILD; i++) {
		int st = 0;
		char path[64], st_buf[512];
		if (state_of(kids[i]) != 'T')
			zt_fail("child %d (stopped by signal %d) is in state %c, want T", kids[i], stop_sigs[i], state_of(kids[i]));
		snprintf(path, sizeof(path), "/proc/%d/status", kids[i]);
		if (zt_status_field(path, "Threads", st_buf, sizeof(st_buf)) == 0 && atoi(st_buf) != (i == NCHILD - 1 ? 3 : 1))
			zt_fail("child %d has %s threads", kids[i], st_buf);
		pid_t r = waitpid(kids[i], &st, WUNTRACED | WNOHANG);
		if (r != kids[i] || !WIFSTOPPED(st) || WSTOPSIG(st) != stop_sigs[i])
			zt_fail("child %d: waitpid(WUNTRACED) = %d status 0x%x, want stopped by signal %d", kids[i], r, st, stop_sigs[i]);
	}
	for (int i = 0; i < NCHILD; i++)
		kill(kids[i], SIGCONT);
	for (int i = 0; i < NCHILD; i++) {
		char c;
		if (read(alive[0], &c, 1) != 1)
			zt_fail("a child did not run after SIGCONT");
		else if (c < 'a' || c >= 'a' + NCHILD)
			zt_fail("unexpected byte %c from a child", c);
	}
	for (int i = 0; i < NCHILD; i++) {
		int st;
		kill(kids[i], SIGKILL);
		while (waitpid(kids[i], &st, 0) < 0 && errno == EINTR)
			;
	}
	return zt_finish();
}
