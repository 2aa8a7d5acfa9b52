// zdtm: desc: MAP_PRIVATE file mappings: one written (COW pages differ from the file), one read-only untouched, one read-exec; the file itself unchanged
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LEN (16 * 4096)

int main(int argc, char **argv)
{
	unsigned char *rw, *ro, *rx, buf[LEN];
	int fd;

	zt_init(argc, argv);
	fd = open("mapped.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
	zt_pattern_fill(buf, LEN, 11);
	if (fd < 0 || write(fd, buf, LEN) != LEN) {
		zt_fail("create mapped.dat");
		return 1;
	}
	rw = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ro = mmap(NULL, LEN / 2, PROT_READ, MAP_PRIVATE, fd, LEN / 2);
	rx = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 4096);
	if (rw == MAP_FAILED || ro == MAP_FAILED || rx == MAP_FAILED) {
		zt_fail("mmap");
		return 1;
	}
	close(fd);
	/* Dirty pages 0, 5 and 6 of the private mapping: they are copies now. */
	zt_pattern_fill(rw, 4096, 21);
	zt_pattern_fill(rw + 5 * 4096, 2 * 4096, 22);
	zt_ready();
	zt_wait_term();
	zt_pattern_expect("private page 0", rw, 4096, 21);
	zt_pattern_expect("private pages 5-6", rw + 5 * 4096, 2 * 4096, 22);
	if (memcmp(rw + 4096, buf + 4096, 4 * 4096) || memcmp(rw + 7 * 4096, buf + 7 * 4096, LEN - 7 * 4096))
		zt_fail("clean pages of the private mapping differ from the file");
	if (memcmp(ro, buf + LEN / 2, LEN / 2))
		zt_fail("read-only mapping differs from the file");
	if (memcmp(rx, buf + 4096, 4096))
		zt_fail("read-exec mapping differs from the file");
	fd = open("mapped.dat", O_RDONLY);
	unsigned char now[LEN];
	if (fd < 0 || read(fd, now, LEN) != LEN || memcmp(now, buf, LEN))
		zt_fail("mapped.dat changed: private writes leaked into the file");
	return zt_finish();
}
