// zdtm: desc: private and shared file mappings whose file changed under them: private pages written then the file rewritten, a private mapping past EOF, a shared mapping of a file truncated since (SIGBUS past EOF), a private mapping mremap'ed at an offset and grown, a written page dropped with MADV_DONTNEED after the file shrank; every sampled byte and SIGBUS as before, and pages still the file's follow later writes to the file
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <setjmp.h>
#include <sys/mman.h>

#define PG 4096
static sigjmp_buf jb;
static void on_bus(int s) { (void)s; siglongjmp(jb, 1); }
static int rd(volatile unsigned char *p, unsigned char *out)
{
	if (sigsetjmp(jb, 1))
		return -1;
	*out = *p;
	return 0;
}
static int mkfile(const char *n, size_t len, int seed)
{
	static unsigned char buf[16 * PG];
	int fd = open(n, O_RDWR | O_CREAT | O_TRUNC, 0600);
	zt_pattern_fill(buf, len, seed);
	if (write(fd, buf, len) != (ssize_t)len)
		exit(1);
	return fd;
}
static char seen[8][1024];

static void dump(int k, const char *what, unsigned char *m, int pages)
{
	char line[1024];
	int o = snprintf(line, sizeof(line), "%s:", what);
	for (int i = 0; i < pages; i++) {
		for (int j = 0; j < PG; j += 2047) {
			unsigned char c;
			if (rd(m + i * PG + j, &c))
				o += snprintf(line + o, sizeof(line) - o, " BUS");
			else
				o += snprintf(line + o, sizeof(line) - o, " %02x", c);
		}
		o += snprintf(line + o, sizeof(line) - o, " |");
	}
	if (!seen[k][0])
		snprintf(seen[k], sizeof(seen[k]), "%s", line);
	else if (strcmp(seen[k], line))
		zt_fail("%s, was %s", line, seen[k]);
}
int main(int argc, char **argv)
{
	int a, b, c, d, e;
	unsigned char *ma, *mb, *mc, *md, *me, *me2;
	zt_init(argc, argv);
	signal(SIGBUS, on_bus);
	signal(SIGSEGV, on_bus);
	a = mkfile("a.dat", 4 * PG, 1);
	ma = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, a, 0);
	ma[0] = 0xaa; (void)ma[PG];
	pwrite(a, "\x11", 1, PG); pwrite(a, "\x12", 1, 2 * PG);
	b = mkfile("b.dat", PG + PG / 2, 2);
	mb = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, b, 0);
	(void)mb[0]; mb[PG + PG / 2 + 10] = 0xbb;
	c = mkfile("c.dat", 4 * PG, 3);
	mc = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
	mc[0] = 0xcc; mc[3 * PG] = 0xcd;
	ftruncate(c, PG + 100);
	d = mkfile("d.dat", 8 * PG, 4);
	md = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, d, 2 * PG);
	md[PG] = 0xdd;
	md = mremap(md + PG, 3 * PG, 5 * PG, MREMAP_MAYMOVE);
	md[4 * PG] = 0xde;
	e = mkfile("e.dat", 4 * PG, 5);
	me = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, e, 0);
	me[0] = 0xee; me[PG] = 0xef;
	madvise(me + PG, PG, MADV_DONTNEED);
	me2 = mmap(NULL, 4 * PG, PROT_READ, MAP_PRIVATE, e, 0);
	(void)me2[0];
	ftruncate(e, 2 * PG);
	dump(0, "a", ma, 4); dump(1, "b", mb, 4); dump(2, "c", mc, 4); dump(3, "d", md, 5); dump(4, "e", me, 4); dump(5, "e2", me2, 4);
	close(b); close(c); close(d); close(e);
	zt_ready();
	zt_wait_term();
	dump(0, "a", ma, 4); dump(1, "b", mb, 4); dump(2, "c", mc, 4); dump(3, "d", md, 5); dump(4, "e", me, 4); dump(5, "e2", me2, 4);
	/* the file's own pages follow the file; the written page does not */
	pwrite(a, "\x21", 1, 2 * PG + 2047); pwrite(a, "\x22", 1, 2047); pwrite(a, "\x23", 1, PG + 2047);
	if (ma[2047] == 0x22 || ma[PG + 2047] != 0x23 || ma[2 * PG + 2047] != 0x21)
		zt_fail("private file mapping after writes to its file: %02x %02x %02x, want not 22, 23, 21", ma[2047], ma[PG + 2047], ma[2 * PG + 2047]);
	return zt_finish();
}
