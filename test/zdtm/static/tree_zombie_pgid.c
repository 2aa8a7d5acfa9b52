// zdtm: desc: zombies in process groups not their own: a zombie in the group of a sibling forked after it, and a zombie (grandchild) in the root's group while its parent leads a group of its own; pgid, sid and exit statuses checked after restore
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

static int stat_fields(pid_t pid, char *state, int *pgid, int *sid)
{
	char path[64], buf[512], *p;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (zt_read_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return -1;
	return sscanf(p + 2, "%c %d %d %d", state, &ppid, pgid, sid) == 4 ? 0 : -1;
}

static void wait_zombie(pid_t pid)
{
	char st = '?';
	int pg, sid;

	for (int i = 0; i < 5000; i++) {
		if (stat_fields(pid, &st, &pg, &sid) == 0 && st == 'Z')
			return;
		usleep(1000);
	}
}

/* check reports a zombie that is not in group pgid and session sid. */
static int check(const char *what, pid_t z, int pgid, int sid)
{
	char st = '?';
	int pg = -1, s = -1;

	if (stat_fields(z, &st, &pg, &s) || st != 'Z' || pg != pgid || s != sid) {
		dprintf(1, "FAIL: %s %d: state %c pgid %d sid %d, want Z, %d, %d\n", what, z, st, pg, s, pgid, sid);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int go[2], ready[2];
	pid_t z1, leader, middle;
	char c;

	zt_init(argc, argv);
	pid_t root = getpid();
	if (pipe(go) || pipe(ready))
		return 1;
	/* z1 is forked first, joins the group of leader, forked after it. */
	z1 = fork();
	if (!z1) {
		pid_t l;
		if (read(go[0], &l, sizeof(l)) != sizeof(l) || setpgid(0, l))
			_exit(99);
		_exit(5);
	}
	leader = fork();
	if (!leader) {
		setpgid(0, 0);
		pid_t me = getpid();
		if (write(go[1], &me, sizeof(me)) != sizeof(me))
			_exit(2);
		zt_wait_term();
		_exit(0);
	}
	setpgid(leader, leader); /* no race with the child's own call */
	/* middle forks z2 in the root's group, then leads a group of its own. */
	middle = fork();
	if (!middle) {
		pid_t z2 = fork();
		int st, bad = 0;
		if (!z2)
			_exit(6);
		setpgid(0, 0);
		wait_zombie(z2);
		if (write(ready[1], &z2, sizeof(z2)) != sizeof(z2))
			_exit(3);
		zt_wait_term();
		bad |= check("grandchild zombie", z2, root, root);
		if (waitpid(z2, &st, 0) != z2 || !WIFEXITED(st) || WEXITSTATUS(st) != 6) {
			dprintf(1, "FAIL: grandchild zombie %d status 0x%x, want exit 6\n", z2, st);
			bad = 1;
		}
		_exit(bad);
	}
	pid_t z2;
	if (read(ready[0], &z2, sizeof(z2)) != sizeof(z2))
		zt_fail("middle child died during setup");
	wait_zombie(z1);
	(void)c;
	zt_ready();
	zt_wait_term();

	int st;
	if (check("zombie", z1, leader, root))
		zt_fail("zombie %d is not in the group of %d", z1, leader);
	if (waitpid(z1, &st, WNOHANG) != z1 || !WIFEXITED(st) || WEXITSTATUS(st) != 5)
		zt_fail("zombie %d: status 0x%x, want exit 5", z1, st);
	kill(middle, SIGTERM);
	if (waitpid(middle, &st, 0) != middle || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("middle child %d ended with status 0x%x", middle, st);
	kill(leader, SIGTERM);
	if (waitpid(leader, &st, 0) != leader || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("group leader %d ended with status 0x%x", leader, st);
	return zt_finish();
}
