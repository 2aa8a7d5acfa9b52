// zdtm: desc: process tree with sessions and groups: children in the root's group, in a new group (setpgid), in a new session (setsid) with its own grandchild in another group, and a grandchild in the parent's group; every task checks its pid, ppid, pgid and sid
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <sys/wait.h>

struct ids {
	pid_t pid, ppid, pgid, sid;
};

static struct ids mine(void)
{
	return (struct ids){ getpid(), getppid(), getpgid(0), getsid(0) };
}

static int check(const char *who, struct ids want)
{
	struct ids got = mine();

	if (memcmp(&got, &want, sizeof(got))) {
		dprintf(1, "FAIL: %s: pid/ppid/pgid/sid %d/%d/%d/%d, want %d/%d/%d/%d\n", who, got.pid, got.ppid, got.pgid,
			got.sid, want.pid, want.ppid, want.pgid, want.sid);
		return 1;
	}
	return 0;
}

/* Ends a subtree: forwards SIGTERM to the children and collects their verdicts. */
static int reap_children(const char *who, pid_t *kids, int n)
{
	int bad = 0;

	for (int i = 0; i < n; i++)
		kill(kids[i], SIGTERM);
	for (int i = 0; i < n; i++) {
		int st;

		if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st)) {
			dprintf(1, "FAIL: %s: child %d ended with status 0x%x\n", who, kids[i], st);
			bad = 1;
		}
	}
	return bad;
}

/* kind: 0 same group, 1 new group, 2 new session; depth 1 forks one grandchild. */
static pid_t spawn(int kind, int depth, int ready_fd, const char *name)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	if (kind == 1)
		setpgid(0, 0);
	if (kind == 2)
		setsid();
	pid_t kids[1];
	int n = 0;
	if (depth > 0) {
		char sub[64];

		snprintf(sub, sizeof(sub), "%s/grandchild", name);
		/* In a new session, put the grandchild in its own group; else stay in ours. */
		kids[n++] = spawn(kind == 2 ? 1 : 0, depth - 1, ready_fd, sub);
	}
	struct ids want = mine();
	if (write(ready_fd, "c", 1) != 1)
		_exit(3);
	close(ready_fd);
	zt_wait_term();
	int bad = check(name, want);
	bad |= reap_children(name, kids, n);
	_exit(bad);
}

int main(int argc, char **argv)
{
	int p[2];
	pid_t kids[3];
	char c;

	zt_init(argc, argv);
	if (pipe(p))
		return 1;
	kids[0] = spawn(0, 1, p[1], "child in root group");
	kids[1] = spawn(1, 0, p[1], "child in own group");
	kids[2] = spawn(2, 1, p[1], "child in own session");
	close(p[1]);
	for (int i = 0; i < 5; i++)
		if (read(p[0], &c, 1) != 1) {
			zt_fail("a child died during setup");
			return 1;
		}
	close(p[0]);
	struct ids want = mine();
	zt_ready();
	zt_wait_term();
	/* The root's parent is whoever adopted it: the launcher is gone. */
	want.ppid = getppid();
	if (check("root", want))
		zt_fail("root ids differ");
	if (reap_children("root", kids, 3))
		zt_fail("some task of the tree failed (see above)");
	return zt_finish();
}
