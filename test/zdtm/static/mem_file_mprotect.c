// zdtm: desc: shared file mappings keep the open mode of their file: a file opened O_RDWR mapped PROT_READ can be mprotect'ed writable and written through after restore; one opened O_RDONLY still cannot
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>

#define LEN (4 * 4096)

static unsigned char *map_file(const char *name, int oflags, uint32_t seed)
{
	static unsigned char buf[LEN];
	unsigned char *m;
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);

	zt_pattern_fill(buf, LEN, seed);
	if (fd < 0 || write(fd, buf, LEN) != LEN)
		return NULL;
	close(fd);
	fd = open(name, oflags);
	if (fd < 0)
		return NULL;
	m = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return m == MAP_FAILED ? NULL : m;
}

int main(int argc, char **argv)
{
	unsigned char *rw, *ro;
	int fd;
	unsigned char c;

	zt_init(argc, argv);
	rw = map_file("mprotect-rw.dat", O_RDWR, 1300);
	ro = map_file("mprotect-ro.dat", O_RDONLY, 1301);
	if (!rw || !ro)
		return 1;
	zt_ready();
	zt_wait_term();
	zt_pattern_expect("O_RDWR file mapping", rw, LEN, 1300);
	zt_pattern_expect("O_RDONLY file mapping", ro, LEN, 1301);
	if (mprotect(rw, LEN, PROT_READ | PROT_WRITE))
		zt_fail("mprotect PROT_WRITE of the mapping of the file opened O_RDWR: %m");
	else {
		rw[5] = 0xa5;
		fd = open("mprotect-rw.dat", O_RDONLY);
		if (fd < 0 || pread(fd, &c, 1, 5) != 1 || c != 0xa5)
			zt_fail("a write through the shared mapping did not reach the file");
		if (fd >= 0)
			close(fd);
	}
	if (!mprotect(ro, LEN, PROT_READ | PROT_WRITE))
		zt_fail("mprotect PROT_WRITE of the mapping of the file opened O_RDONLY succeeded");
	else if (errno != EACCES)
		zt_fail("mprotect PROT_WRITE of the read-only file mapping: %m, want EACCES");
	return zt_finish();
}
