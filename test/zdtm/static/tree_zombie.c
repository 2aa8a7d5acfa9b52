// zdtm: desc: zombies: children that exited (code 42) and were killed (SIGKILL) and a grandchild zombie under a live child stay unreaped across checkpoint; exit statuses checked when reaped after SIGTERM
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static char state_of(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (zt_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return '?';
	return p[2];
}

static void wait_zombie(pid_t pid)
{
	for (int i = 0; i < 5000 && state_of(pid) != 'Z'; i++)
		usleep(1000);
}

int main(int argc, char **argv)
{
	pid_t exited, killed, parent;
	int p[2];

	zt_init(argc, argv);
	exited = fork();
	if (!exited)
		_exit(42);
	killed = fork();
	if (!killed) {
		raise(SIGKILL);
		_exit(0);
	}
	if (pipe(p))
		return 1;
	parent = fork();
	if (!parent) {
		pid_t z = fork();
		char c = 'r';

		if (!z)
			_exit(7);
		close(p[0]);
		wait_zombie(z);
		if (write(p[1], &z, sizeof(z)) != sizeof(z))
			_exit(3);
		close(p[1]);
		zt_wait_term();
		int st, bad = 0;
		if (state_of(z) != 'Z') {
			dprintf(1, "FAIL: grandchild %d is not a zombie (state %c)\n", z, state_of(z));
			bad = 1;
		}
		if (waitpid(z, &st, 0) != z || !WIFEXITED(st) || WEXITSTATUS(st) != 7) {
			dprintf(1, "FAIL: grandchild zombie %d status 0x%x, want exit 7\n", z, st);
			bad = 1;
		}
		(void)c;
		_exit(bad);
	}
	close(p[1]);
	pid_t gz;
	if (read(p[0], &gz, sizeof(gz)) != sizeof(gz))
		zt_fail("middle child died during setup");
	close(p[0]);
	wait_zombie(exited);
	wait_zombie(killed);
	zt_ready();
	zt_wait_term();
	int st;
	if (state_of(exited) != 'Z')
		zt_fail("child %d is not a zombie (state %c)", exited, state_of(exited));
	if (state_of(gz) != 'Z')
		zt_fail("grandchild %d is not a zombie (state %c)", gz, state_of(gz));
	if (waitpid(exited, &st, WNOHANG) != exited || !WIFEXITED(st) || WEXITSTATUS(st) != 42)
		zt_fail("zombie %d: status 0x%x, want exit 42", exited, st);
	if (waitpid(killed, &st, WNOHANG) != killed || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		zt_fail("zombie %d: status 0x%x, want killed by SIGKILL", killed, st);
	kill(parent, SIGTERM);
	if (waitpid(parent, &st, 0) != parent || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("middle child %d ended with status 0x%x", parent, st);
	return zt_finish();
}
