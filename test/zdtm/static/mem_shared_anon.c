// zdtm: desc: shared anonymous memory is one object across the tasks that map it: a MAP_SHARED|MAP_ANONYMOUS area split in two by munmap (two VMAs, one object, a page never written in between), a MAP_SHARED /dev/zero area, both shared with a forked child, and one the child made alone; after restore the contents are as written, each task's write is seen by the other, and the child's own area is not the parent's
// zdtm: modes: restore snapshot twice predump
// (CRIU 4.2 restores shared anonymous memory as memfd mappings, and dumps it as such: see test/zdtm/README.md)
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096

static char *anon, *zero;
static int c2p[2], p2c[2];

static void fill(char *p, int pages, uint32_t seed)
{
	for (int i = 0; i < pages; i++)
		zt_pattern_fill(p + i * PG, PG, seed + i);
}

static int check(const char *who, const char *what, char *p, int pages, uint32_t seed)
{
	int bad = 0;
	for (int i = 0; i < pages; i++)
		if (zt_pattern_check(p + i * PG, PG, seed + i) >= 0) {
			dprintf(1, "FAIL: %s: %s page %d differs\n", who, what, i);
			bad++;
		}
	return bad;
}

static int child(void)
{
	char c;
	char *own = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (own == MAP_FAILED)
		return 2;
	fill(own, 2, 300);
	if (write(c2p[1], "r", 1) != 1 || read(p2c[0], &c, 1) != 1)
		return 2;
	/* After restore: what the parent wrote before, then a write of ours. */
	int bad = check("child", "anon", anon, 1, 100) + check("child", "anon tail", anon + 2 * PG, 2, 102) +
		  check("child", "zero", zero, 2, 200) + check("child", "own", own, 2, 300);
	anon[3 * PG + 5] = 'C';
	zero[PG + 7] = 'C';
	if (write(c2p[1], "w", 1) != 1 || read(p2c[0], &c, 1) != 1)
		return 2;
	if (anon[2 * PG + 9] != 'P')
		bad++, dprintf(1, "FAIL: child does not see the parent's write\n");
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	int status;
	char c;

	zt_init(argc, argv);
	anon = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int zfd = open("/dev/zero", O_RDWR);
	zero = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
	if (anon == MAP_FAILED || zero == MAP_FAILED)
		return 1;
	close(zfd);
	fill(anon, 4, 100);
	munmap(anon + PG, PG); /* two VMAs of one object */
	fill(zero, 2, 200);
	if (pipe(c2p) || pipe(p2c))
		return 1;
	pid_t kid = fork();
	if (kid == 0)
		_exit(child());
	if (read(c2p[0], &c, 1) != 1)
		zt_fail("child not ready");
	zt_ready();
	zt_wait_term();
	check("parent", "anon", anon, 1, 100);
	check("parent", "anon tail", anon + 2 * PG, 2, 102);
	check("parent", "zero", zero, 2, 200);
	if (write(p2c[1], "g", 1) != 1 || read(c2p[0], &c, 1) != 1)
		zt_fail("child did not write");
	if (anon[3 * PG + 5] != 'C' || zero[PG + 7] != 'C')
		zt_fail("the parent does not see the child's writes (%#x %#x)", anon[3 * PG + 5], zero[PG + 7]);
	anon[2 * PG + 9] = 'P';
	if (write(p2c[1], "g", 1) != 1 || waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("child failed (status %#x)", status);
	return zt_finish();
}
