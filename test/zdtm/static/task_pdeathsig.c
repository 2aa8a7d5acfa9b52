// zdtm: desc: parent-death signal: a child with prctl(PR_SET_PDEATHSIG, SIGUSR2) keeps it across restore, and really gets SIGUSR2 when its parent (a middle task) dies
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static volatile sig_atomic_t got_usr2;

static void on_usr2(int sig)
{
	(void)sig;
	got_usr2 = 1;
}

int main(int argc, char **argv)
{
	int ready[2], verdict[2];
	char c;

	zt_init(argc, argv);
	if (pipe(ready) || pipe(verdict))
		return 1;
	pid_t middle = fork();
	if (!middle) {
		pid_t child = fork();
		if (!child) {
			signal(SIGUSR2, on_usr2);
			prctl(PR_SET_PDEATHSIG, SIGUSR2);
			if (write(ready[1], "c", 1) != 1)
				_exit(2);
			close(ready[1]);
			close(ready[0]);
			close(verdict[0]);
			/* Wait for the parent to die, then report. */
			while (!got_usr2)
				pause();
			int sig = -1;
			prctl(PR_GET_PDEATHSIG, &sig);
			char v = sig == SIGUSR2 ? 'P' : 'F';
			_exit(write(verdict[1], &v, 1) != 1);
		}
		close(ready[0]);
		close(ready[1]);
		close(verdict[0]);
		close(verdict[1]);
		zt_wait_term();
		_exit(0);
	}
	close(ready[1]);
	close(verdict[1]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child died in setup");
	close(ready[0]);
	zt_ready();
	zt_wait_term();
	kill(middle, SIGTERM);
	int st;
	waitpid(middle, &st, 0);
	/* The grandchild saw SIGUSR2 from its parent's death, then says P. */
	if (read(verdict[0], &c, 1) != 1)
		zt_fail("grandchild did not report (no parent-death signal?)");
	else if (c != 'P')
		zt_fail("grandchild's PR_GET_PDEATHSIG is not SIGUSR2");
	return zt_finish();
}
