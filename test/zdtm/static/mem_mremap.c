// zdtm: desc: areas moved and grown with mremap (their page offsets no longer match their addresses) and a partly unmapped area; data and layout checked
// zdtm: modes: restore snapshot twice predump predump-hashes make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sys/mman.h>

#define PG 4096

int main(int argc, char **argv)
{
	unsigned char *a, *b, *moved, *grown, *holey;

	zt_init(argc, argv);
	a = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zt_pattern_fill(a, 8 * PG, 51);
	moved = mremap(a, 8 * PG, 8 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, b + 16 * PG);
	if (moved == MAP_FAILED)
		return 1;
	grown = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zt_pattern_fill(grown, 4 * PG, 52);
	grown = mremap(grown, 4 * PG, 64 * PG, MREMAP_MAYMOVE);
	if (grown == MAP_FAILED)
		return 1;
	zt_pattern_fill(grown + 60 * PG, 4 * PG, 53);
	holey = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zt_pattern_fill(holey, 16 * PG, 54);
	munmap(holey + 4 * PG, 4 * PG);
	munmap(holey + 12 * PG, PG);
	zt_ready();
	zt_wait_term();
	zt_pattern_expect("moved area", moved, 8 * PG, 51);
	zt_pattern_expect("grown area (old part)", grown, 4 * PG, 52);
	zt_pattern_expect("grown area (new end)", grown + 60 * PG, 4 * PG, 53);
	for (int p = 4; p < 60; p++)
		if (grown[p * PG] || grown[p * PG + PG - 1]) {
			zt_fail("grown area page %d is not zero", p);
			break;
		}
	unsigned char want[16 * PG];
	zt_pattern_fill(want, sizeof(want), 54);
	for (int p = 0; p < 16; p++) {
		int mapped = !(p >= 4 && p < 8) && p != 12;
		unsigned char v;

		if (mincore(holey + p * PG, PG, &v) == 0 && !mapped)
			zt_fail("unmapped page %d of the holey area is mapped again", p);
		if (mapped && memcmp(holey + p * PG, want + p * PG, PG))
			zt_fail("holey area page %d differs", p);
	}
	return zt_finish();
}
