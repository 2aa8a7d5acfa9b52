// zdtm: desc: one mapping split by mprotect into r--, rw-, r-x and --- pieces with data written before each change; protections and data checked
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096
static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC, PROT_NONE, PROT_READ | PROT_WRITE };
#define N (sizeof(prots) / sizeof(prots[0]))

static int maps_perms(void *addr, char *perms)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long s, e;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &s, &e, perms) == 3 && (unsigned long)addr >= s && (unsigned long)addr < e) {
			fclose(f);
			return 0;
		}
	fclose(f);
	return -1;
}

int main(int argc, char **argv)
{
	unsigned char *m;
	char want[N][5];

	zt_init(argc, argv);
	m = mmap(NULL, N * 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < N; i++) {
		zt_pattern_fill(m + i * 2 * PG, 2 * PG, 300 + i);
		if (mprotect(m + i * 2 * PG, 2 * PG, prots[i]))
			zt_fail("mprotect piece %zu", i);
		snprintf(want[i], 5, "%c%c%cp", prots[i] & PROT_READ ? 'r' : '-', prots[i] & PROT_WRITE ? 'w' : '-',
			 prots[i] & PROT_EXEC ? 'x' : '-');
	}
	zt_ready();
	zt_wait_term();
	for (size_t i = 0; i < N; i++) {
		char perms[8], what[32];

		if (maps_perms(m + i * 2 * PG, perms) || strcmp(perms, want[i]))
			zt_fail("piece %zu: protection %s, want %s", i, perms, want[i]);
		if (!(prots[i] & PROT_READ))
			mprotect(m + i * 2 * PG, 2 * PG, PROT_READ);
		snprintf(what, sizeof(what), "piece %zu", i);
		zt_pattern_expect(what, m + i * 2 * PG, 2 * PG, 300 + i);
	}
	return zt_finish();
}
