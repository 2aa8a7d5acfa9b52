// zdtm: desc: after restore (in lazy-faults before any of it is in place), mremap moves an area whole, grows one (moving it), shrinks one, moves the middle of one, and moves one with MREMAP_DONTUNMAP; data checked at the new places, zero where nothing was, the old places unmapped (or zero after MREMAP_DONTUNMAP)
// zdtm: modes: restore snapshot twice predump make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <sys/mman.h>

#define PG 4096
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static unsigned char want[64 * PG];

static void *anon(size_t pages, uint32_t seed)
{
	void *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	zt_pattern_fill(p, pages * PG, seed);
	return p;
}

/* expect checks pages [from, to) of area against pages [wfrom, ...) of
 * the pattern seed (want). */
static void expect(const char *what, unsigned char *area, int from, int to, uint32_t seed, int wfrom)
{
	zt_pattern_fill(want, sizeof(want), seed);
	for (int p = from; p < to; p++)
		if (memcmp(area + p * PG, want + (wfrom + p - from) * PG, PG)) {
			zt_fail("%s: page %d differs", what, p);
			return;
		}
}

static void expect_zero(const char *what, unsigned char *area, int from, int to)
{
	for (int p = from; p < to; p++)
		for (int i = 0; i < PG; i++)
			if (area[p * PG + i]) {
				zt_fail("%s: page %d is not zero", what, p);
				return;
			}
}

static void expect_unmapped(const char *what, unsigned char *area, int from, int to)
{
	unsigned char v;

	for (int p = from; p < to; p++)
		if (mincore(area + p * PG, PG, &v) == 0 || errno != ENOMEM) {
			zt_fail("%s: page %d is still mapped", what, p);
			return;
		}
}

/* hole reserves pages of address space nobody uses, to move areas to. */
static unsigned char *hole(size_t pages)
{
	void *p = mmap(NULL, pages * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

int main(int argc, char **argv)
{
	unsigned char *moved, *grown, *shrunk, *middle, *keep, *to, *r;
	unsigned char *h1, *h2, *h3;

	zt_init(argc, argv);
	moved = anon(16, 71);
	grown = anon(8, 72);
	shrunk = anon(16, 73);
	middle = anon(16, 74);
	keep = anon(8, 75);
	h1 = hole(32);
	h2 = hole(32);
	h3 = hole(32);
	zt_ready();
	zt_wait_term();

	/* Moved whole, untouched. */
	to = h1 + 8 * PG;
	r = mremap(moved, 16 * PG, 16 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (r != to)
		zt_fail("mremap move: %s", strerror(errno));
	else {
		expect("moved area at its new place", to, 0, 16, 71, 0);
		expect_unmapped("moved area's old place", moved, 0, 16);
	}

	/* Grown (the kernel may move it), its first two pages read first. */
	expect("grown area before mremap (pages 0-1)", grown, 0, 2, 72, 0);
	r = mremap(grown, 8 * PG, 40 * PG, MREMAP_MAYMOVE);
	if (r == MAP_FAILED)
		zt_fail("mremap grow: %s", strerror(errno));
	else {
		expect("grown area", r, 0, 8, 72, 0);
		expect_zero("grown area's new end", r, 8, 40);
	}

	/* Shrunk in place. */
	r = mremap(shrunk, 16 * PG, 4 * PG, 0);
	if (r != shrunk)
		zt_fail("mremap shrink: %s", strerror(errno));
	else {
		expect("shrunk area", shrunk, 0, 4, 73, 0);
		expect_unmapped("shrunk area's cut end", shrunk, 4, 16);
	}

	/* The middle pages 6-9 moved out. */
	to = h2 + 4 * PG;
	r = mremap(middle + 6 * PG, 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	if (r != to)
		zt_fail("mremap middle: %s", strerror(errno));
	else {
		expect("middle pages at their new place", to, 0, 4, 74, 6);
		expect("area's head", middle, 0, 6, 74, 0);
		expect_unmapped("area's moved middle", middle, 6, 10);
		expect("area's tail", middle + 10 * PG, 0, 6, 74, 10);
	}

	/* MREMAP_DONTUNMAP: the data moves, the old place stays mapped
	 * and reads zero. */
	to = h3 + 8 * PG;
	r = mremap(keep, 8 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
	if (r == MAP_FAILED && errno == EINVAL)
		zt_log("MREMAP_DONTUNMAP: EINVAL (kernel before 5.7): not checked");
	else if (r != to)
		zt_fail("mremap dontunmap: %s", strerror(errno));
	else {
		expect("area moved by MREMAP_DONTUNMAP", to, 0, 8, 75, 0);
		expect_zero("old place of MREMAP_DONTUNMAP", keep, 0, 8);
	}
	return zt_finish();
}
