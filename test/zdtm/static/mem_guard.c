// zdtm: desc: guard pages: PROT_NONE pages between and around data areas of one reservation; guards still fault, neighbours intact
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096
#define AREAS 4
#define AREA (4 * PG)
/* layout: guard | area | guard | area | ... | guard */
#define SPAN (AREAS * (AREA + PG) + PG)

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

static int faults(volatile unsigned char *p, int write)
{
	if (sigsetjmp(jb, 1))
		return 1;
	if (write)
		*p = 1;
	else
		(void)*p;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char *r;

	zt_init(argc, argv);
	r = mmap(NULL, SPAN, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		return 1;
	for (int i = 0; i < AREAS; i++) {
		unsigned char *a = r + PG + i * (AREA + PG);

		mprotect(a, AREA, PROT_READ | PROT_WRITE);
		zt_pattern_fill(a, AREA, 600 + i);
	}
	signal(SIGSEGV, on_segv);
	zt_ready();
	zt_wait_term();
	for (int i = 0; i <= AREAS; i++) {
		unsigned char *g = r + i * (AREA + PG);

		if (!faults(g, 0) || !faults(g + PG - 1, 1))
			zt_fail("guard page %d at %p is accessible", i, (void *)g);
	}
	for (int i = 0; i < AREAS; i++) {
		char what[32];

		snprintf(what, sizeof(what), "area %d", i);
		zt_pattern_expect(what, r + PG + i * (AREA + PG), AREA, 600 + i);
	}
	return zt_finish();
}
