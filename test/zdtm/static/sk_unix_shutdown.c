// zdtm: desc: unix stream and seqpacket socketpairs with one end shut down for writing after data was queued both ways, and a stream pair with one end shut down for reading (SIGPIPE blocked); after restore the queued data reads back (records whole), then EOF where the peer shut writing; writes where writing is shut fail with EPIPE, and the directions still open carry new data
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <signal.h>
#include <sys/socket.h>

/* Records (or, on the stream, writes) queued before the shutdown. */
static const size_t sizes[3] = { 700, 33, 1300 };

static int queue(int fd, uint32_t seed, int n)
{
	unsigned char buf[2048];

	for (int i = 0; i < n; i++) {
		zt_pattern_fill(buf, sizes[i], seed + i);
		if (write(fd, buf, sizes[i]) != (ssize_t)sizes[i])
			return -1;
	}
	return 0;
}

/*
 * Reads n records (seqpacket) or the bytes of n writes (stream) from fd and
 * checks them; then expects EOF (a read of 0) if eof, else nothing (EAGAIN).
 */
static void drain(const char *what, int fd, int stream, uint32_t seed, int n, int eof)
{
	unsigned char buf[4096];
	char w[96];

	if (stream) {
		size_t total = 0, off = 0;
		for (int i = 0; i < n; i++)
			total += sizes[i];
		while (off < total) {
			ssize_t r = recv(fd, buf + off, total - off, MSG_DONTWAIT);
			if (r <= 0) {
				zt_fail("%s: read %zd after %zu of %zu queued bytes (errno %d)", what, r, off, total, errno);
				return;
			}
			off += r;
		}
		off = 0;
		for (int i = 0; i < n; i++) {
			snprintf(w, sizeof(w), "%s: write %d", what, i);
			zt_pattern_expect(w, buf + off, sizes[i], seed + i);
			off += sizes[i];
		}
	} else {
		for (int i = 0; i < n; i++) {
			ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
			if (r != (ssize_t)sizes[i]) {
				zt_fail("%s: record %d is %zd bytes (errno %d), want %zu", what, i, r, errno, sizes[i]);
				continue;
			}
			snprintf(w, sizeof(w), "%s: record %d", what, i);
			zt_pattern_expect(w, buf, r, seed + i);
		}
	}
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (eof && r != 0)
		zt_fail("%s: read %zd after the queued data (errno %d), want EOF", what, r, errno);
	if (!eof && !(r < 0 && errno == EAGAIN))
		zt_fail("%s: read %zd after the queued data (errno %d), want EAGAIN", what, r, errno);
}

static void expect_epipe(const char *what, int fd)
{
	ssize_t r = write(fd, "x", 1);

	if (!(r < 0 && errno == EPIPE))
		zt_fail("%s: write returns %zd (errno %d), want EPIPE", what, r, errno);
}

static void expect_works(const char *what, int from, int to)
{
	static const char msg[] = "new data after restore";
	char buf[64];
	ssize_t r;

	if (write(from, msg, sizeof(msg)) != sizeof(msg)) {
		zt_fail("%s: write after restore: errno %d", what, errno);
		return;
	}
	r = recv(to, buf, sizeof(buf), MSG_DONTWAIT);
	if (r != sizeof(msg) || memcmp(buf, msg, r))
		zt_fail("%s: read %zd bytes after restore (errno %d), want %zu", what, r, errno, sizeof(msg));
}

int main(int argc, char **argv)
{
	int st[2], sq[2], rd[2];
	sigset_t pipe_set;

	zt_init(argc, argv);
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &pipe_set, NULL))
		return 1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sq) || socketpair(AF_UNIX, SOCK_STREAM, 0, rd))
		zt_skip("socketpair: %s", strerror(errno));

	/* Stream: data both ways, then end 0 stops writing. */
	if (queue(st[0], 10, 3) || queue(st[1], 20, 2) || shutdown(st[0], SHUT_WR))
		zt_fail("stream pair: setup: %s", strerror(errno));
	/* Seqpacket: the same. */
	if (queue(sq[0], 30, 3) || queue(sq[1], 40, 1) || shutdown(sq[0], SHUT_WR))
		zt_fail("seqpacket pair: setup: %s", strerror(errno));
	/* Stream: end 0 sends, then stops reading. */
	if (queue(rd[0], 50, 3) || shutdown(rd[0], SHUT_RD))
		zt_fail("SHUT_RD pair: setup: %s", strerror(errno));
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	/* Writing shut on end 0: end 1 reads the data, then EOF. */
	drain("stream, end shut for writing -> peer", st[1], 1, 10, 3, 1);
	drain("stream, peer -> end shut for writing", st[0], 1, 20, 2, 0);
	expect_epipe("stream, end shut for writing", st[0]);
	expect_works("stream, peer -> end shut for writing", st[1], st[0]);

	drain("seqpacket, end shut for writing -> peer", sq[1], 0, 30, 3, 1);
	drain("seqpacket, peer -> end shut for writing", sq[0], 0, 40, 1, 0);
	expect_epipe("seqpacket, end shut for writing", sq[0]);
	expect_works("seqpacket, peer -> end shut for writing", sq[1], sq[0]);

	/* Reading shut on end 0: it sees EOF, its peer cannot write. */
	char c;
	ssize_t r = recv(rd[0], &c, 1, MSG_DONTWAIT);
	if (r != 0)
		zt_fail("stream, end shut for reading: read %zd (errno %d), want EOF", r, errno);
	expect_epipe("stream, peer of the end shut for reading", rd[1]);
	drain("stream, end shut for reading -> peer", rd[1], 1, 50, 3, 0);
	expect_works("stream, end shut for reading -> peer", rd[0], rd[1]);

	return zt_finish();
}
