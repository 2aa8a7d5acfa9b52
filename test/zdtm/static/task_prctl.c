// zdtm: desc: process-wide prctl state: PR_SET_THP_DISABLE, PR_SET_DUMPABLE 0, PR_SET_CHILD_SUBREAPER, with a child that keeps the defaults (THP disable is inherited by fork, so the child clears it); each reads its own back after restore
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sys/prctl.h>
#include <sys/wait.h>

struct want {
	int thp, dumpable, subreaper;
};

static int check(const char *who, struct want w)
{
	int sub = -1;
	int thp = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
	int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);

	prctl(PR_GET_CHILD_SUBREAPER, &sub, 0, 0, 0);
	if (thp != w.thp || dumpable != w.dumpable || sub != w.subreaper) {
		dprintf(1, "FAIL: %s: thp_disable %d dumpable %d subreaper %d, want %d %d %d\n", who, thp, dumpable,
			sub, w.thp, w.dumpable, w.subreaper);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int ready[2];
	char c;
	struct want root = { 1, 0, 1 }, kid = { 0, 1, 0 };

	zt_init(argc, argv);
	if (pipe(ready))
		return 1;
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) || prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) {
		zt_fail("cannot set THP disable or child subreaper");
		return zt_finish();
	}
	pid_t child = fork();
	if (!child) {
		close(ready[0]);
		if (prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0))
			_exit(3);
		if (write(ready[1], "c", 1) != 1)
			_exit(2);
		close(ready[1]);
		zt_wait_term();
		_exit(check("child", kid));
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child died in setup");
	close(ready[0]);
	/* After the fork: a non-dumpable parent's child would be too. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		zt_fail("cannot clear dumpable");
	if (check("root before checkpoint", root))
		zt_fail("setup differs (see above)");
	zt_ready();
	zt_wait_term();
	if (check("root", root))
		zt_fail("root's prctl state differs (see above)");
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		zt_fail("child: prctl state differs (status 0x%x)", st);
	return zt_finish();
}
