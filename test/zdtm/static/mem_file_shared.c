// zdtm: desc: MAP_SHARED mapping of a regular file written through the mapping: data is in the file and in the mapping, and writes after restore still reach the file
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/mman.h>

#define LEN (8 * 4096)

int main(int argc, char **argv)
{
	unsigned char *m, buf[LEN];
	int fd;

	zt_init(argc, argv);
	fd = open("shared.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, LEN))
		return 1;
	m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return 1;
	zt_pattern_fill(m, LEN, 41);
	zt_ready();
	zt_wait_term();
	zt_pattern_expect("shared mapping", m, LEN, 41);
	m[100] ^= 0xff;
	fd = open("shared.dat", O_RDONLY);
	if (fd < 0 || pread(fd, buf, LEN, 0) != LEN)
		zt_fail("read shared.dat");
	m[100] ^= 0xff;
	buf[100] ^= 0xff;
	zt_pattern_expect("shared.dat (with a write after restore)", buf, LEN, 41);
	return zt_finish();
}
