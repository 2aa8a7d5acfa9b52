// zdtm: desc: madvise and mlock flags of private anonymous areas, each on an area of its own (dontfork, dontdump, hugepage, nohugepage, wipeonfork, mergeable, random, sequential, mlock): smaps VmFlags of every area as set up, and the data kept
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sys/mman.h>

#define PG 4096
#define AREA (4 * PG)

static const struct {
	const char *name;
	int advice; /* -1: mlock */
	const char *flag;
} cases[] = {
	{"dontfork", MADV_DONTFORK, "dc"},
	{"dontdump", MADV_DONTDUMP, "dd"},
	{"hugepage", MADV_HUGEPAGE, "hg"},
	{"nohugepage", MADV_NOHUGEPAGE, "nh"},
	{"wipeonfork", MADV_WIPEONFORK, "wf"},
	{"mergeable", MADV_MERGEABLE, "mg"},
	{"random", MADV_RANDOM, "rr"},
	{"sequential", MADV_SEQUENTIAL, "sr"},
	{"mlock", -1, "lo"},
};
#define N (int)(sizeof(cases) / sizeof(cases[0]))

/* vmflags copies the VmFlags line of the area starting at addr. */
static int vmflags(void *addr, char *out, size_t size)
{
	char line[512], want[32];
	int found = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			found = 1;
		else if (found && !strncmp(line, "VmFlags:", 8)) {
			line[strcspn(line, "\n")] = 0;
			snprintf(out, size, "%s", line + 8);
			fclose(f);
			return 0;
		}
	}
	fclose(f);
	return -1;
}

/* without_um drops the "um" flag: a post-copy restore (lazy-faults)
 * registers a lazy area with userfaultfd until its pages are all in
 * place, which is no flag the test set (the runner allows it too). */
static void without_um(char *flags)
{
	char *p;

	while ((p = strstr(flags, " um ")))
		memmove(p, p + 3, strlen(p + 3) + 1);
}

static int has(const char *flags, const char *f)
{
	char pad[512], w[8];

	snprintf(pad, sizeof(pad), "%s ", flags);
	snprintf(w, sizeof(w), " %s ", f);
	return strstr(pad, w) != NULL;
}

int main(int argc, char **argv)
{
	static char before[N][512];
	unsigned char *r;

	zt_init(argc, argv);
	/* guard page | area | guard page | area ... : areas never merge */
	r = mmap(NULL, N * (AREA + PG) + PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		return 1;
	for (int i = 0; i < N; i++) {
		unsigned char *a = r + PG + i * (AREA + PG);

		if (mprotect(a, AREA, PROT_READ | PROT_WRITE))
			return 1;
		if (cases[i].advice < 0) {
			if (mlock(a, AREA))
				zt_fail("mlock: %m");
		} else if (madvise(a, AREA, cases[i].advice))
			zt_fail("madvise %s: %m", cases[i].name);
		zt_pattern_fill(a, AREA, 1100 + i);
		if (vmflags(a, before[i], sizeof(before[i])) || !has(before[i], cases[i].flag))
			zt_fail("%s: VmFlags \"%s\" lack %s after setup", cases[i].name, before[i], cases[i].flag);
	}
	zt_ready();
	zt_wait_term();
	for (int i = 0; i < N; i++) {
		unsigned char *a = r + PG + i * (AREA + PG);
		char now[512] = "";

		if (vmflags(a, now, sizeof(now)))
			zt_fail("%s: area %p is gone from smaps", cases[i].name, (void *)a);
		else if (without_um(now), strcmp(now, before[i]))
			zt_fail("%s: VmFlags \"%s\", were \"%s\"", cases[i].name, now, before[i]);
		zt_pattern_expect(cases[i].name, a, AREA, 1100 + i);
	}
	return zt_finish();
}
