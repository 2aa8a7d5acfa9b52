// zdtm: desc: a deleted sparse file of 1 GiB apparent size holding 16 KiB of data in three extents, dumped under the default --ghost-limit: size, data, holes (SEEK_DATA/SEEK_HOLE map), small st_blocks and offset kept
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#define SIZE (1L << 30)

static const struct {
	off_t off;
	size_t len;
	uint32_t seed;
} ext[] = {{0, 4096, 31}, {SIZE / 2, 8192, 32}, {SIZE - 4096, 4096, 33}};
#define NEXT (sizeof(ext) / sizeof(ext[0]))

int main(int argc, char **argv)
{
	static unsigned char buf[8192];
	struct stat st;
	int fd;

	zt_init(argc, argv);
	fd = open("sparse.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, SIZE))
		return 1;
	for (size_t i = 0; i < NEXT; i++) {
		zt_pattern_fill(buf, ext[i].len, ext[i].seed);
		if (pwrite(fd, buf, ext[i].len, ext[i].off) != (ssize_t)ext[i].len)
			return 1;
	}
	lseek(fd, 12345, SEEK_SET);
	if (unlink("sparse.dat"))
		return 1;
	zt_ready();
	zt_wait_term();
	if (fstat(fd, &st) || st.st_size != SIZE || st.st_nlink != 0)
		zt_fail("size %ld nlink %ld, want %ld and 0", (long)st.st_size, (long)st.st_nlink, SIZE);
	if (st.st_blocks * 512 > 256 * 1024)
		zt_fail("%ld bytes allocated: the holes were filled", (long)st.st_blocks * 512);
	if (lseek(fd, 0, SEEK_CUR) != 12345)
		zt_fail("offset %ld, want 12345", (long)lseek(fd, 0, SEEK_CUR));
	off_t pos = 0;
	for (size_t i = 0; i < NEXT; i++) {
		off_t d = lseek(fd, pos, SEEK_DATA), h = d < 0 ? -1 : lseek(fd, d, SEEK_HOLE);
		if (d != ext[i].off || h != ext[i].off + (off_t)ext[i].len)
			zt_fail("extent %zu: data %ld-%ld, want %ld-%ld", i, (long)d, (long)h, (long)ext[i].off, (long)(ext[i].off + ext[i].len));
		memset(buf, 0, sizeof(buf));
		if (pread(fd, buf, ext[i].len, ext[i].off) != (ssize_t)ext[i].len)
			zt_fail("extent %zu: short read", i);
		else
			zt_pattern_expect("extent", buf, ext[i].len, ext[i].seed);
		pos = ext[i].off + ext[i].len;
	}
	memset(buf, 1, sizeof(buf));
	if (pread(fd, buf, 4096, SIZE / 4) != 4096)
		zt_fail("hole: short read");
	for (int i = 0; i < 4096; i++)
		if (buf[i]) {
			zt_fail("hole at %ld reads byte %d", SIZE / 4 + i, buf[i]);
			break;
		}
	return zt_finish();
}
