// zdtm: desc: lightweight guard regions (madvise MADV_GUARD_INSTALL, Linux 6.13+) inside private anonymous areas of a parent and of the child it forked, which removed one of the inherited guards and installed another: pagemap shows the guard bit on exactly those pages, they fault, the pages between keep their data
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#define PM_GUARD_REGION (1ULL << 58)
#define PG 4096
#define NP 32

static sigjmp_buf jb;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(jb, 1);
}

static int faults(volatile unsigned char *p)
{
	if (sigsetjmp(jb, 1))
		return 1;
	(void)*p;
	return 0;
}

/* guard: is page i a guard page for this task (parent: 3, 10, 11, 31; the child: 3, 11, 20, 31) */
static int guard(int i, int child)
{
	if (i == 10)
		return !child;
	if (i == 20)
		return child;
	return i == 3 || i == 11 || i == 31;
}

static int check(unsigned char *m, int child)
{
	uint64_t pm[NP];
	int fd = open("/proc/self/pagemap", O_RDONLY), bad = 0;

	if (fd < 0 || pread(fd, pm, sizeof(pm), (off_t)((uintptr_t)m / PG * 8)) != sizeof(pm)) {
		dprintf(1, "FAIL: read pagemap: %m\n");
		return 1;
	}
	close(fd);
	for (int i = 0; i < NP; i++) {
		int g = guard(i, child);

		if (!!(pm[i] & PM_GUARD_REGION) != g) {
			dprintf(1, "FAIL: %s: page %d: pagemap %s the guard bit\n", child ? "child" : "parent", i, g ? "lacks" : "has");
			bad = 1;
		}
		if (faults(m + i * PG) != g) {
			dprintf(1, "FAIL: %s: page %d %s\n", child ? "child" : "parent", i, g ? "is readable" : "faults");
			bad = 1;
		} else if (!g && zt_pattern_check(m + i * PG, PG, child && (i % 2 || i == 10) ? 1500 + i : 1400 + i) >= 0) {
			dprintf(1, "FAIL: %s: page %d holds other data\n", child ? "child" : "parent", i);
			bad = 1;
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	unsigned char *m;
	int p[2];
	char c;

	zt_init(argc, argv);
	signal(SIGSEGV, on_segv);
	m = mmap(NULL, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || pipe(p))
		return 1;
	for (int i = 0; i < NP; i++)
		zt_pattern_fill(m + i * PG, PG, 1400 + i);
	for (int i = 0; i < NP; i++)
		if (guard(i, 0) && madvise(m + i * PG, PG, MADV_GUARD_INSTALL)) {
			zt_fail("MADV_GUARD_INSTALL: %m");
			return zt_finish();
		}
	pid_t child = fork();
	if (!child) {
		close(p[0]);
		if (madvise(m + 10 * PG, PG, MADV_GUARD_REMOVE) || madvise(m + 20 * PG, PG, MADV_GUARD_INSTALL))
			_exit(3);
		/* odd pages rewritten (copied), even pages still shared with the parent */
		for (int i = 0; i < NP; i++)
			if (!guard(i, 1))
				zt_pattern_fill(m + i * PG, PG, i % 2 || i == 10 ? 1500 + i : 1400 + i);
		if (write(p[1], "c", 1) != 1)
			_exit(2);
		close(p[1]);
		zt_wait_term();
		_exit(check(m, 1));
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		zt_fail("child died in setup");
	close(p[0]);
	zt_ready();
	zt_wait_term();
	if (check(m, 0))
		zt_fail("parent's guard regions differ");
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("child's guard regions differ (status 0x%x)", st);
	return zt_finish();
}
