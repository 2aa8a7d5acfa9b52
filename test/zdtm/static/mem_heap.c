// zdtm: desc: heap: many small malloc blocks (brk heap) and a large malloc (mmap'd) with patterns, program break unchanged
// zdtm: modes: restore snapshot twice predump predump-hashes make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <stdlib.h>
#include <unistd.h>

#define NSMALL 500

int main(int argc, char **argv)
{
	void *small[NSMALL], *brk0;
	size_t big_len = 8 << 20;
	unsigned char *big;

	zt_init(argc, argv);
	for (int i = 0; i < NSMALL; i++) {
		size_t len = 16 + (i * 37) % 2000;
		small[i] = malloc(len);
		zt_pattern_fill(small[i], len, 7 + i);
	}
	/* Free every third one: holes in the heap must come back as they were. */
	for (int i = 0; i < NSMALL; i += 3) {
		free(small[i]);
		small[i] = NULL;
	}
	big = malloc(big_len);
	zt_pattern_fill(big, big_len, 99);
	brk0 = sbrk(0);
	zt_ready();
	zt_wait_term();
	for (int i = 0; i < NSMALL; i++) {
		char what[32];

		if (!small[i])
			continue;
		snprintf(what, sizeof(what), "block %d", i);
		zt_pattern_expect(what, small[i], 16 + (i * 37) % 2000, 7 + i);
	}
	zt_pattern_expect("big block", big, big_len, 99);
	if (sbrk(0) != brk0)
		zt_fail("program break moved from %p to %p", brk0, sbrk(0));
	/* The heap must still work. */
	void *p = malloc(100000);
	if (!p)
		zt_fail("malloc after restore");
	free(p);
	return zt_finish();
}
