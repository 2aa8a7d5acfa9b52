// zdtm: desc: memfd mappings: a memfd mapped shared by a parent and a forked child with its fd closed, one both held as an fd and mapped, and a private mapping of a memfd written copy-on-write; after restore the contents are as written, a write through one shared mapping is seen through the other task's and through the fd, and the private copy stays private
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096

int main(int argc, char **argv)
{
	int c2p[2], p2c[2], status;
	char c;

	zt_init(argc, argv);
	int a = memfd_create("mapped-only", 0), b = memfd_create("held", MFD_ALLOW_SEALING), p = memfd_create("private", 0);
	if (a < 0 || b < 0 || p < 0 || ftruncate(a, 3 * PG) || ftruncate(b, 2 * PG) || ftruncate(p, 2 * PG))
		zt_skip("memfd_create: %m");
	char *ma = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	char *mb = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
	if (ma == MAP_FAILED || mb == MAP_FAILED)
		return 1;
	close(a);
	zt_pattern_fill(ma, 3 * PG, 11);
	zt_pattern_fill(mb, 2 * PG, 12);
	if (write(p, "private-file", 12) != 12)
		return 1;
	char *mp = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, p, 0);
	if (mp == MAP_FAILED)
		return 1;
	memcpy(mp + PG, "cow", 3);
	if (pipe(c2p) || pipe(p2c))
		return 1;
	pid_t kid = fork();
	if (kid == 0) {
		if (write(c2p[1], "r", 1) != 1 || read(p2c[0], &c, 1) != 1)
			_exit(2);
		int bad = zt_pattern_check(ma, 3 * PG, 11) >= 0;
		ma[2 * PG] = 'K';
		_exit(bad);
	}
	if (read(c2p[0], &c, 1) != 1)
		zt_fail("child not ready");
	zt_ready();
	zt_wait_term();
	zt_pattern_expect("mapped-only memfd", ma, 3 * PG, 11);
	zt_pattern_expect("held memfd", mb, 2 * PG, 12);
	if (memcmp(mp, "private-file", 12) || memcmp(mp + PG, "cow", 3))
		zt_fail("private memfd mapping lost its contents");
	char buf[16] = {0};
	if (pread(p, buf, 12, PG) != 12 || memcmp(buf, "\0\0\0", 3))
		zt_fail("the private mapping's write reached the memfd");
	mb[5] = 'Z';
	if (pread(b, buf, 1, 5) != 1 || buf[0] != 'Z')
		zt_fail("a write to the held memfd's mapping is not seen through its fd");
	if (write(p2c[1], "g", 1) != 1 || waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("child: mapped memfd differs (status %#x)", status);
	if (ma[2 * PG] != 'K')
		zt_fail("the child's write to the shared memfd is not seen by the parent");
	return zt_finish();
}
