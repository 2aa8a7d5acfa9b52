// zdtm: desc: a deleted FIFO open by a read end (O_NONBLOCK) and a write end, 3000 bytes in flight: both ends stay one pipe, with its data, mode, link count 0 and "(deleted)" name
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

static void check_name(int fd)
{
	char path[64], link[512];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!strstr(link, "/gone fifo (deleted)"))
		zt_fail("fd %d links to %s", fd, link);
}

int main(int argc, char **argv)
{
	unsigned char buf[4096];
	struct stat rst, wst;
	int rd, wr;

	zt_init(argc, argv);
	if (mkfifo("gone fifo", 0640))
		return 1;
	rd = open("gone fifo", O_RDONLY | O_NONBLOCK);
	wr = open("gone fifo", O_WRONLY);
	zt_pattern_fill(buf, 3000, 17);
	if (rd < 0 || wr < 0 || write(wr, buf, 3000) != 3000)
		return 1;
	if (unlink("gone fifo"))
		return 1;
	zt_ready();
	zt_wait_term();
	if (fstat(rd, &rst) || fstat(wr, &wst))
		zt_fail("fstat: %m");
	if (!S_ISFIFO(rst.st_mode) || !S_ISFIFO(wst.st_mode))
		zt_fail("modes 0%o 0%o: not FIFOs", rst.st_mode, wst.st_mode);
	if ((rst.st_mode & 07777) != 0640 || rst.st_nlink != 0)
		zt_fail("read end: permissions 0%o nlink %ld, want 0640 and 0", rst.st_mode & 07777, (long)rst.st_nlink);
	if (rst.st_ino != wst.st_ino || rst.st_dev != wst.st_dev)
		zt_fail("the two ends are different FIFOs: inodes %lu and %lu", (unsigned long)rst.st_ino, (unsigned long)wst.st_ino);
	if ((fcntl(rd, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDONLY | O_NONBLOCK) || (fcntl(wr, F_GETFL) & O_ACCMODE) != O_WRONLY)
		zt_fail("fd flags 0%o 0%o", fcntl(rd, F_GETFL), fcntl(wr, F_GETFL));
	check_name(rd);
	check_name(wr);
	memset(buf, 0, sizeof(buf));
	ssize_t n = read(rd, buf, sizeof(buf));
	if (n != 3000)
		zt_fail("read %zd bytes from the FIFO, want 3000", n);
	else
		zt_pattern_expect("FIFO data", buf, 3000, 17);
	if (read(rd, buf, 1) != -1 || errno != EAGAIN)
		zt_fail("the FIFO holds more than its 3000 bytes");
	if (write(wr, "ping", 4) != 4 || read(rd, buf, 10) != 4 || memcmp(buf, "ping", 4))
		zt_fail("what the write end writes does not reach the read end");
	return zt_finish();
}
