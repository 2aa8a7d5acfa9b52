// zdtm: desc: credentials of an unprivileged task: real/effective/saved uid and gid 65534, supplementary groups, dumpable flag; checked by the test and by the runner
// zdtm: modes: restore snapshot twice predump criu-restore criu-predump
// Not in criu-dump: CRIU 4.2 dumps a task of another uid only with
// CAP_SYS_RESOURCE (prlimit), which root lacks on the test machine ("Can't
// get rlimit").
// zdtm: uid: 65534
// zdtm: gid: 65534
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <grp.h>
#include <sys/prctl.h>

/* Sorted: the kernel keeps supplementary groups in ascending order. */
static const gid_t groups[] = { 100, 4242, 65534 };
#define NG (sizeof(groups) / sizeof(groups[0]))

int main(int argc, char **argv)
{
	uid_t r, e, s;
	gid_t gr, ge, gs, got[16];

	zt_init(argc, argv);
	if (setgroups(NG, groups) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) {
		zt_fail("dropping to 65534");
		return 1;
	}
	int dumpable = prctl(PR_GET_DUMPABLE);
	zt_ready();
	zt_wait_term();
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	if (r != 65534 || e != 65534 || s != 65534)
		zt_fail("uids %d/%d/%d", r, e, s);
	if (gr != 65534 || ge != 65534 || gs != 65534)
		zt_fail("gids %d/%d/%d", gr, ge, gs);
	int n = getgroups(16, got);
	if (n != (int)NG)
		zt_fail("%d supplementary groups, want %zu", n, NG);
	else
		for (size_t i = 0; i < NG; i++)
			if (got[i] != groups[i])
				zt_fail("group %zu is %d, want %d", i, got[i], groups[i]);
	if (prctl(PR_GET_DUMPABLE) != dumpable)
		zt_fail("dumpable %d, want %d", prctl(PR_GET_DUMPABLE), dumpable);
	if (setresuid(0, 0, 0) == 0)
		zt_fail("became root again: privileges were not really dropped");
	return zt_finish();
}
