// zdtm: desc: personality ADDR_NO_RANDOMIZE (set with personality(2) before checkpoint) read back after restore
// zdtm: modes: restore snapshot twice predump
// Not in the criu-* modes: CRIU 4.2 never restores a task's personality, and
// records it read as decimal from the hex /proc/PID/personality (0x40000
// becomes 40000), so no restore of its images can bring it back.
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sys/personality.h>

int main(int argc, char **argv)
{
	int want;

	zt_init(argc, argv);
	personality(PER_LINUX | ADDR_NO_RANDOMIZE);
	want = personality(0xffffffff);
	if (want != (PER_LINUX | ADDR_NO_RANDOMIZE))
		zt_fail("personality 0x%x after setting it", want);
	zt_ready();
	zt_wait_term();
	int got = personality(0xffffffff);
	if (got != want)
		zt_fail("personality 0x%x, want 0x%x", got, want);
	return zt_finish();
}
