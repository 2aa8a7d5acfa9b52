// zdtm: desc: pipes with unread data in flight: a small one, one at high fd numbers filled to its 64 KiB capacity (non-blocking), a 1 MiB one (F_SETPIPE_SZ) half full, and one whose write end is closed (data then EOF)
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>

struct pipe_case {
	const char *name;
	int fds[2];
	size_t len;
	uint32_t seed;
};

static int fill(int fd, size_t len, uint32_t seed)
{
	unsigned char *buf = malloc(len);
	size_t off = 0;

	zt_pattern_fill(buf, len, seed);
	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n <= 0)
			break;
		off += n;
	}
	free(buf);
	return off == len ? 0 : -1;
}

static void drain(const char *name, int fd, size_t len, uint32_t seed, int want_eof)
{
	unsigned char *buf = malloc(len + 1);
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, buf + off, len - off);
		if (n <= 0) {
			zt_fail("%s: read %zd after %zu of %zu bytes (errno %d)", name, n, off, len, errno);
			free(buf);
			return;
		}
		off += n;
	}
	char what[64];
	snprintf(what, sizeof(what), "%s data", name);
	zt_pattern_expect(what, buf, len, seed);
	ssize_t n = read(fd, buf, 1);
	if (want_eof && n != 0)
		zt_fail("%s: read %zd after the data, want EOF", name, n);
	if (!want_eof && !(n < 0 && errno == EAGAIN))
		zt_fail("%s: read %zd after the data, want EAGAIN (more data than written?)", name, n);
	free(buf);
}

int main(int argc, char **argv)
{
	int small[2], full[2], big[2], eof[2];

	zt_init(argc, argv);
	if (pipe(small) || pipe2(full, O_NONBLOCK) || pipe(big) || pipe(eof))
		return 1;
	/* Move the full pipe to fds 100 and 101. */
	dup2(full[0], 100);
	dup2(full[1], 101);
	close(full[0]);
	close(full[1]);
	if (fcntl(big[1], F_SETPIPE_SZ, 1 << 20) < (1 << 20))
		zt_fail("F_SETPIPE_SZ 1 MiB");
	if (fill(small[1], 1000, 1) || fill(101, 65536, 2) || fill(big[1], 512 * 1024, 3) || fill(eof[1], 3333, 4))
		zt_fail("filling the pipes");
	if (write(101, "x", 1) != -1 || errno != EAGAIN)
		zt_fail("64 KiB pipe is not full");
	close(eof[1]);
	zt_ready();
	zt_wait_term();
	if (fcntl(100, F_GETFL) != (O_RDONLY | O_NONBLOCK) || fcntl(101, F_GETFL) != (O_WRONLY | O_NONBLOCK))
		zt_fail("non-blocking pipe flags 0%o/0%o", fcntl(100, F_GETFL), fcntl(101, F_GETFL));
	if (fcntl(big[0], F_GETPIPE_SZ) != 1 << 20)
		zt_fail("big pipe size %d, want %d", fcntl(big[0], F_GETPIPE_SZ), 1 << 20);
	if (fcntl(small[0], F_GETPIPE_SZ) != 65536)
		zt_fail("small pipe size %d", fcntl(small[0], F_GETPIPE_SZ));
	if (write(101, "x", 1) != -1 || errno != EAGAIN)
		zt_fail("64 KiB pipe is not full after restore");
	fcntl(small[0], F_SETFL, O_NONBLOCK);
	fcntl(big[0], F_SETFL, O_NONBLOCK);
	drain("small pipe", small[0], 1000, 1, 0);
	drain("full pipe", 100, 65536, 2, 0);
	drain("1 MiB pipe", big[0], 512 * 1024, 3, 0);
	drain("widowed pipe", eof[0], 3333, 4, 1);
	return zt_finish();
}
