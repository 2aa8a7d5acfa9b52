// zdtm: desc: main-thread stack: patterns in frames of a deep recursion and a large on-stack array
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <string.h>

#define DEPTH 64

static __attribute__((noinline)) int deepest(void)
{
	unsigned char big[256 * 1024];

	zt_pattern_fill(big, sizeof(big), 4242);
	zt_ready();
	zt_wait_term();
	return zt_pattern_expect("256 KiB stack array", big, sizeof(big), 4242) != 0;
}

static int frame(int depth)
{
	unsigned char local[2048];
	int bad = 0;

	zt_pattern_fill(local, sizeof(local), 500 + depth);
	if (depth < DEPTH)
		bad = frame(depth + 1);
	else
		bad = deepest();
	if (zt_pattern_check(local, sizeof(local), 500 + depth) >= 0) {
		zt_fail("frame %d: stack pattern differs", depth);
		bad++;
	}
	return bad;
}

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	frame(0);
	return zt_finish();
}
