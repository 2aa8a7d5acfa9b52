// zdtm: desc: a root task with reduced capabilities: effective/permitted/inheritable sets from capset, an ambient cap, CAP_SYS_BOOT and CAP_MKNOD dropped from the bounding set, no_new_privs, securebits
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define B(c) (1u << (c))

static int capget_(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	return syscall(SYS_capget, &h, d);
}

int main(int argc, char **argv)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct want[2] = {
		{ .effective = B(CAP_CHOWN) | B(CAP_DAC_OVERRIDE) | B(CAP_KILL),
		  .permitted = B(CAP_CHOWN) | B(CAP_DAC_OVERRIDE) | B(CAP_KILL) | B(CAP_SETUID) | B(CAP_NET_ADMIN),
		  .inheritable = B(CAP_KILL) | B(CAP_NET_ADMIN) },
		{ .effective = 0, .permitted = B(CAP_SYSLOG - 32), .inheritable = 0 },
	}, got[2];

	int bset0[CAP_LAST_CAP + 1];

	zt_init(argc, argv);
	/* The bounding set we start with may already lack some caps (the runner's own). */
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		bset0[c] = prctl(PR_CAPBSET_READ, c);
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT) || prctl(PR_CAPBSET_DROP, CAP_MKNOD))
		zt_fail("PR_CAPBSET_DROP");
	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP))
		zt_fail("PR_SET_SECUREBITS");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		zt_fail("PR_SET_NO_NEW_PRIVS");
	if (syscall(SYS_capset, &h, want))
		zt_fail("capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0))
		zt_fail("raise ambient CAP_KILL");
	zt_ready();
	zt_wait_term();
	if (capget_(got))
		zt_fail("capget");
	for (int i = 0; i < 2; i++)
		if (got[i].effective != want[i].effective || got[i].permitted != want[i].permitted ||
		    got[i].inheritable != want[i].inheritable)
			zt_fail("caps word %d: eff %x prm %x inh %x, want %x %x %x", i, got[i].effective, got[i].permitted,
				got[i].inheritable, want[i].effective, want[i].permitted, want[i].inheritable);
	for (int c = 0; c <= CAP_LAST_CAP; c++) {
		int in = prctl(PR_CAPBSET_READ, c);
		int want_in = bset0[c] == 1 && c != CAP_SYS_BOOT && c != CAP_MKNOD;

		if (in != want_in)
			zt_fail("bounding set: cap %d is %d, want %d", c, in, want_in);
		int amb = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0);
		if (amb != (c == CAP_KILL))
			zt_fail("ambient set: cap %d is %d", c, amb);
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		zt_fail("no_new_privs lost");
	if (prctl(PR_GET_SECUREBITS) != (SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP))
		zt_fail("securebits 0x%x", prctl(PR_GET_SECUREBITS));
	return zt_finish();
}
