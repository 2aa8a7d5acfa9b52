// zdtm: desc: after restore (in lazy-faults before any of it is in place), mprotect splits areas that were one at the dump: the upper half of one made read-only, the middle of another PROT_NONE and back, a third read-only whole; each read across the new boundaries, then made writable, written and read back
// zdtm: modes: restore snapshot twice predump make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <sys/mman.h>

#define PG 4096
#define N 32 /* pages of each area */

static unsigned char want[N * PG];

/* areas maps three areas of N pages next to each other (one area as the
 * kernel sees them, at the dump), each with its pattern. */
static unsigned char *areas(void)
{
	unsigned char *p = mmap(NULL, 3 * N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	for (int i = 0; i < 3; i++)
		zt_pattern_fill(p + i * N * PG, N * PG, 91 + i);
	return p;
}

static void expect(const char *what, unsigned char *area, uint32_t seed)
{
	zt_pattern_fill(want, sizeof(want), seed);
	for (int p = 0; p < N; p++)
		if (memcmp(area + p * PG, want + p * PG, PG)) {
			zt_fail("%s: page %d is not the data written before the dump", what, p);
			return;
		}
}

static void prot(unsigned char *at, int pages, int prot)
{
	if (mprotect(at, pages * PG, prot))
		zt_fail("mprotect %p %d pages %#x: %s", (void *)at, pages, prot, strerror(errno));
}

static void written(const char *what, unsigned char *area, unsigned char v)
{
	memset(area, v, N * PG);
	for (int i = 0; i < N * PG; i++)
		if (area[i] != v) {
			zt_fail("%s: byte %d is %#x after writing %#x", what, i, area[i], v);
			return;
		}
}

int main(int argc, char **argv)
{
	unsigned char *m, *half, *middle, *whole;

	zt_init(argc, argv);
	m = areas();
	half = m;
	middle = m + N * PG;
	whole = m + 2 * N * PG;
	zt_ready();
	zt_wait_term();

	/* The upper half of one read-only: read from its first page on. */
	prot(half + N / 2 * PG, N / 2, PROT_READ);
	expect("area with a read-only upper half", half, 91);

	/* The middle of another PROT_NONE and back. */
	prot(middle + 8 * PG, 8, PROT_NONE);
	prot(middle + 8 * PG, 8, PROT_READ | PROT_WRITE);
	expect("area whose middle was PROT_NONE", middle, 92);

	/* A whole one read-only: its neighbours stay writable. */
	prot(whole, N, PROT_READ);
	expect("read-only area", whole, 93);

	prot(half + N / 2 * PG, N / 2, PROT_READ | PROT_WRITE);
	prot(whole, N, PROT_READ | PROT_WRITE);
	written("area with a read-only upper half", half, 0x44);
	written("area whose middle was PROT_NONE", middle, 0x55);
	written("read-only area", whole, 0x66);
	return zt_finish();
}
