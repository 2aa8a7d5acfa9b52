// zdtm: desc: live tasks in process groups led by tasks made after them: a child in the group of a sibling forked after it, and its own child (a grandchild) in that group too; pgid and sid of each checked after restore, in every task
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

static int bad_ids(const char *who, pid_t pgid, pid_t sid)
{
	if (getpgid(0) != pgid || getsid(0) != sid) {
		dprintf(1, "FAIL: %s %d: pgid %d sid %d, want %d %d\n", who, getpid(), getpgid(0), getsid(0), pgid, sid);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int go[2], ready[2];
	pid_t member, leader, l;
	int st;

	zt_init(argc, argv);
	pid_t root = getpid();
	if (pipe(go) || pipe(ready))
		return 1;
	/* member is forked first and joins the group of leader, forked after
	 * it; then member forks a grandchild, which stays in that group. */
	member = fork();
	if (!member) {
		pid_t gc;
		if (read(go[0], &l, sizeof(l)) != sizeof(l) || setpgid(0, l))
			_exit(99);
		gc = fork();
		if (!gc) {
			zt_wait_term();
			_exit(bad_ids("grandchild", l, root));
		}
		if (write(ready[1], &gc, sizeof(gc)) != sizeof(gc))
			_exit(98);
		zt_wait_term();
		int bad = bad_ids("member", l, root);
		kill(gc, SIGTERM);
		if (waitpid(gc, &st, 0) != gc || !WIFEXITED(st) || WEXITSTATUS(st)) {
			dprintf(1, "FAIL: grandchild %d ended with status 0x%x\n", gc, st);
			bad = 1;
		}
		_exit(bad);
	}
	leader = fork();
	if (!leader) {
		setpgid(0, 0);
		zt_wait_term();
		_exit(bad_ids("leader", getpid(), root));
	}
	setpgid(leader, leader); /* no race with the child's own call */
	if (write(go[1], &leader, sizeof(leader)) != sizeof(leader))
		zt_fail("write");
	pid_t gc;
	if (read(ready[0], &gc, sizeof(gc)) != sizeof(gc))
		zt_fail("member died during setup");
	zt_ready();
	zt_wait_term();

	if (bad_ids("root", root, root))
		zt_fail("root ids changed");
	kill(member, SIGTERM);
	if (waitpid(member, &st, 0) != member || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("member %d ended with status 0x%x", member, st);
	kill(leader, SIGTERM);
	if (waitpid(leader, &st, 0) != leader || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("group leader %d ended with status 0x%x", leader, st);
	return zt_finish();
}
