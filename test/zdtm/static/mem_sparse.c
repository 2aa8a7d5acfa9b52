// zdtm: desc: 1 GiB private anonymous reservation with a few scattered pages touched; touched pages keep data, untouched stay zero and unpopulated
// zdtm: modes: restore snapshot twice predump predump-hashes make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sys/mman.h>
#include <unistd.h>

#define GIB (1UL << 30)
#define PG 4096UL
static const unsigned long touched[] = { 0, 1, 4096, 65535, 131072, 200000, 262143 };
#define N (sizeof(touched) / sizeof(touched[0]))

int main(int argc, char **argv)
{
	unsigned char *m, vec[64];

	zt_init(argc, argv);
	m = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < N; i++)
		zt_pattern_fill(m + touched[i] * PG, PG, 900 + i);
	zt_ready();
	zt_wait_term();
	/* Check residency first, before reading pulls pages in: pages 2..65 were never touched. */
	if (mincore(m + 2 * PG, 64 * PG, vec))
		zt_fail("mincore");
	for (int i = 0; i < 64; i++)
		if (vec[i] & 1) {
			zt_fail("untouched page %d became resident", 2 + i);
			break;
		}
	for (size_t i = 0; i < N; i++) {
		char what[48];

		snprintf(what, sizeof(what), "page %lu", touched[i]);
		zt_pattern_expect(what, m + touched[i] * PG, PG, 900 + i);
	}
	for (unsigned long p = 0; p < GIB / PG; p += 997) {
		int hit = 0;

		for (size_t i = 0; i < N; i++)
			hit |= touched[i] == p;
		if (!hit && (m[p * PG] || m[p * PG + PG - 1])) {
			zt_fail("untouched page %lu is not zero", p);
			break;
		}
	}
	return zt_finish();
}
