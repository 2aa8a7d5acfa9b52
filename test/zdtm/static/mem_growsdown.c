// zdtm: desc: MAP_GROWSDOWN mapping with data, still marked grows-down ("gd" in smaps VmFlags) and still growing on access below it
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL

static int vmflags(unsigned long addr, char *flags, size_t size)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long s, e;
	int in = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = addr >= s && addr < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, size, "%s", line + 8);
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return -1;
}

int main(int argc, char **argv)
{
	unsigned char *hole, *m;
	char flags[512];

	zt_init(argc, argv);
	/* Reserve room below so the area can grow, then map the grows-down area at its top. */
	hole = mmap(NULL, 1024 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hole == MAP_FAILED)
		return 1;
	munmap(hole, 1024 * PG);
	m = mmap(hole + 1020 * PG, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED, -1, 0);
	if (m == MAP_FAILED) {
		zt_fail("mmap MAP_GROWSDOWN");
		return 1;
	}
	zt_pattern_fill(m, 4 * PG, 31);
	if (vmflags((unsigned long)m, flags, sizeof(flags)) || !strstr(flags, " gd"))
		zt_fail("before checkpoint: no gd flag (%s)", flags);
	zt_ready();
	zt_wait_term();
	if (vmflags((unsigned long)m, flags, sizeof(flags)) || !strstr(flags, " gd"))
		zt_fail("grows-down flag lost: VmFlags:%s", flags);
	zt_pattern_expect("grows-down data", m, 4 * PG, 31);
	/* Touch the page just below: the area must grow to cover it. */
	m[-1] = 0x5a;
	if (m[-1] != 0x5a)
		zt_fail("area did not grow down");
	return zt_finish();
}
