// zdtm: desc: after restore (in lazy-faults before any of it is in place), MADV_DONTNEED of a whole area and of part of one half read (zero there, the data elsewhere), munmap and mmap again of a whole area and of part of one (zero), an area unmapped for good; then written and read back
// zdtm: modes: restore snapshot twice predump make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <sys/mman.h>

#define PG 4096
#define N 16 /* pages of each area */

static unsigned char want[N * PG];

static void *anon(uint32_t seed)
{
	void *p = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	zt_pattern_fill(p, N * PG, seed);
	return p;
}

/* expect checks pages [from, to) of area: zero, or the pattern seed. */
static void expect(const char *what, unsigned char *area, int from, int to, int zero, uint32_t seed)
{
	if (!zero)
		zt_pattern_fill(want, sizeof(want), seed);
	for (int p = from; p < to; p++) {
		int bad = 0;

		if (zero) {
			for (int i = 0; i < PG && !bad; i++)
				bad = area[p * PG + i] != 0;
		} else
			bad = memcmp(area + p * PG, want + p * PG, PG) != 0;
		if (bad) {
			zt_fail("%s: page %d is not %s", what, p, zero ? "zero" : "the data written before the dump");
			return;
		}
	}
}

/* written fills the area with a new byte and checks it stays. */
static void written(const char *what, unsigned char *area, int pages, unsigned char v)
{
	memset(area, v, pages * PG);
	for (int i = 0; i < pages * PG; i++)
		if (area[i] != v) {
			zt_fail("%s: byte %d is %#x after writing %#x", what, i, area[i], v);
			return;
		}
}

static void remap(const char *what, unsigned char *at, int pages)
{
	if (munmap(at, pages * PG))
		zt_fail("%s: munmap: %s", what, strerror(errno));
	else if (mmap(at, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != at)
		zt_fail("%s: mmap again: %s", what, strerror(errno));
}

int main(int argc, char **argv)
{
	unsigned char *dn_all, *dn_part, *un_all, *un_part, *gone;
	unsigned char v;

	zt_init(argc, argv);
	dn_all = anon(81);
	dn_part = anon(82);
	un_all = anon(83);
	un_part = anon(84);
	gone = anon(85);
	zt_ready();
	zt_wait_term();

	/* MADV_DONTNEED of an untouched area: it reads zero. */
	if (madvise(dn_all, N * PG, MADV_DONTNEED))
		zt_fail("madvise whole area: %s", strerror(errno));
	expect("area dropped whole", dn_all, 0, N, 1, 0);
	written("area dropped whole", dn_all, N, 0x11);

	/* Pages 0-3 read first, 2-9 dropped. */
	expect("area dropped in part, before", dn_part, 0, 4, 0, 82);
	if (madvise(dn_part + 2 * PG, 8 * PG, MADV_DONTNEED))
		zt_fail("madvise part: %s", strerror(errno));
	expect("area dropped in part (read, kept)", dn_part, 0, 2, 0, 82);
	expect("area dropped in part (dropped)", dn_part, 2, 10, 1, 0);
	expect("area dropped in part (never read, kept)", dn_part, 10, N, 0, 82);
	written("area dropped in part", dn_part, N, 0x22);

	/* munmap and mmap again: zero. */
	remap("area mapped again whole", un_all, N);
	expect("area mapped again whole", un_all, 0, N, 1, 0);
	written("area mapped again whole", un_all, N, 0x33);

	remap("area mapped again in part", un_part + 4 * PG, 4);
	expect("area mapped again in part (head)", un_part, 0, 4, 0, 84);
	expect("area mapped again in part (mapped again)", un_part, 4, 8, 1, 0);
	expect("area mapped again in part (tail)", un_part, 8, N, 0, 84);

	/* Unmapped for good: its lazy pages have no place to go. */
	if (munmap(gone, N * PG))
		zt_fail("munmap: %s", strerror(errno));
	else if (mincore(gone, PG, &v) == 0 || errno != ENOMEM)
		zt_fail("unmapped area is still mapped");

	return zt_finish();
}
