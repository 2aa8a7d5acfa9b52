// zdtm: desc: private anonymous mappings of several sizes filled with patterns, some pages left untouched (must stay zero)
// zdtm: modes: restore snapshot twice predump predump-hashes make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const size_t sizes[] = { 4096, 3 * 4096, 64 * 4096, 1024 * 4096 + 4096 };
#define N (sizeof(sizes) / sizeof(sizes[0]))

int main(int argc, char **argv)
{
	unsigned char *m[N];
	long pg = sysconf(_SC_PAGESIZE);

	zt_init(argc, argv);
	for (size_t i = 0; i < N; i++) {
		m[i] = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m[i] == MAP_FAILED) {
			zt_fail("mmap %zu bytes", sizes[i]);
			return 1;
		}
		/* Every other page gets a pattern; the rest are never touched. */
		for (size_t off = 0; off < sizes[i]; off += 2 * pg)
			zt_pattern_fill(m[i] + off, pg, 1000 * i + off / pg);
		zt_log("mapping %zu at %p", i, (void *)m[i]);
	}
	zt_ready();
	zt_wait_term();
	for (size_t i = 0; i < N; i++) {
		for (size_t off = 0; off < sizes[i]; off += pg) {
			char what[64];

			snprintf(what, sizeof(what), "mapping %zu page %zu", i, off / pg);
			if ((off / pg) % 2 == 0) {
				zt_pattern_expect(what, m[i] + off, pg, 1000 * i + off / pg);
				continue;
			}
			for (long b = 0; b < pg; b++)
				if (m[i][off + b]) {
					zt_fail("%s: untouched page has byte 0x%02x at %ld", what, m[i][off + b], b);
					break;
				}
		}
	}
	return zt_finish();
}
