// zdtm: desc: a named pipe (FIFO) open for reading and writing (O_RDWR) and by a separate write-only fd, with unread data in it
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	unsigned char buf[6000];
	int rw, wo;
	struct stat st;

	zt_init(argc, argv);
	if (mkfifo("the fifo", 0640))
		return 1;
	rw = open("the fifo", O_RDWR | O_NONBLOCK);
	wo = open("the fifo", O_WRONLY);
	zt_pattern_fill(buf, 4000, 71);
	if (rw < 0 || wo < 0 || write(wo, buf, 4000) != 4000)
		return 1;
	zt_ready();
	zt_wait_term();
	if (fstat(rw, &st) || !S_ISFIFO(st.st_mode) || stat("the fifo", &st) || !S_ISFIFO(st.st_mode))
		zt_fail("the fifo is no longer a fifo");
	if ((fcntl(rw, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDWR | O_NONBLOCK) || (fcntl(wo, F_GETFL) & O_ACCMODE) != O_WRONLY)
		zt_fail("fifo fd flags 0%o 0%o", fcntl(rw, F_GETFL), fcntl(wo, F_GETFL));
	memset(buf, 0, sizeof(buf));
	ssize_t n = read(rw, buf, sizeof(buf));
	if (n != 4000)
		zt_fail("read %zd bytes from the fifo, want 4000", n);
	else
		zt_pattern_expect("fifo data", buf, 4000, 71);
	/* Both fds still reach the same fifo. */
	if (write(wo, "hi", 2) != 2 || read(rw, buf, 10) != 2 || memcmp(buf, "hi", 2))
		zt_fail("write-only fd and read-write fd no longer share the fifo");
	return zt_finish();
}
