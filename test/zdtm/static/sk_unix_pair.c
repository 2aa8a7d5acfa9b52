// zdtm: desc: unix socketpairs of each type (stream, dgram, seqpacket) in one task, and one of each shared with a forked child (each holds one end); data queued both ways (stream bytes from several writes, datagrams and records of distinct sizes); after restore everything reads back exactly, with message boundaries, SO_TYPE unchanged, and new data goes both ways (parent and child)
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/wait.h>

static const int types[3] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
static const char *names[3] = { "stream", "dgram", "seqpacket" };

/* The messages queued before the checkpoint: sizes, and a seed per message. */
static const size_t sizes[4] = { 1, 17, 300, 4000 };
#define NMSG 4

/* Seed of message i sent by side `from` (0 or 1) of pair `pair` of type t. */
static uint32_t seed(int pair, int t, int from, int i)
{
	return 1000 * pair + 100 * t + 10 * from + i + 1;
}

static int queue_msgs(int fd, int pair, int t, int from)
{
	unsigned char buf[4096];

	for (int i = 0; i < NMSG; i++) {
		zt_pattern_fill(buf, sizes[i], seed(pair, t, from, i));
		if (write(fd, buf, sizes[i]) != (ssize_t)sizes[i])
			return -1;
	}
	return 0;
}

/*
 * Reads what the other side queued (from = its side) and checks it: for a
 * stream the bytes of all writes in a row, for dgram and seqpacket one
 * message per read with its own size. Then nothing more is queued.
 * Returns the number of differences; `fail` reports them.
 */
static int check_queue(int fd, int pair, int t, int from, void (*fail)(const char *, ...))
{
	unsigned char buf[8192];
	int bad = 0;

	if (types[t] == SOCK_STREAM) {
		size_t total = 0, off = 0;

		for (int i = 0; i < NMSG; i++)
			total += sizes[i];
		while (off < total) {
			ssize_t n = recv(fd, buf + off, sizeof(buf) - off, MSG_DONTWAIT);
			if (n <= 0) {
				fail("%s pair %d: read %zd after %zu of %zu bytes (errno %d)", names[t], pair, n, off, total, errno);
				return bad + 1;
			}
			off += n;
		}
		off = 0;
		for (int i = 0; i < NMSG; i++) {
			long d = zt_pattern_check(buf + off, sizes[i], seed(pair, t, from, i));
			if (d >= 0) {
				fail("%s pair %d: write %d differs at byte %ld", names[t], pair, i, d);
				bad++;
			}
			off += sizes[i];
		}
	} else {
		for (int i = 0; i < NMSG; i++) {
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
			if (n != (ssize_t)sizes[i]) {
				fail("%s pair %d: message %d is %zd bytes (errno %d), want %zu", names[t], pair, i, n, errno, sizes[i]);
				bad++;
				continue;
			}
			long d = zt_pattern_check(buf, n, seed(pair, t, from, i));
			if (d >= 0) {
				fail("%s pair %d: message %d differs at byte %ld", names[t], pair, i, d);
				bad++;
			}
		}
	}
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (!(n < 0 && errno == EAGAIN)) {
		fail("%s pair %d: recv %zd after the queued data (errno %d), want EAGAIN", names[t], pair, n, errno);
		bad++;
	}
	return bad;
}

static int check_type(int fd, int t, void (*fail)(const char *, ...))
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) || v != types[t]) {
		fail("%s socket: SO_TYPE %d, want %d", names[t], v, types[t]);
		return 1;
	}
	return 0;
}

/* One message of new data from `from` to `to`; checks it arrived whole. */
static int exchange(int from, int to, const char *msg, const char *what, void (*fail)(const char *, ...))
{
	char buf[256];
	size_t len = strlen(msg);

	if (write(from, msg, len) != (ssize_t)len) {
		fail("%s: write after restore: errno %d", what, errno);
		return 1;
	}
	ssize_t n = recv(to, buf, sizeof(buf) - 1, 0);
	if (n != (ssize_t)len || memcmp(buf, msg, len)) {
		fail("%s: read %zd bytes after restore, want \"%s\"", what, n, msg);
		return 1;
	}
	return 0;
}

static void parent_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void parent_fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	zt_fail("%s", buf);
}

static void child_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void child_fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	dprintf(1, "FAIL: child: %s\n", buf);
}

int main(int argc, char **argv)
{
	int own[3][2], shared[3][2], ready[2], go[2], status;
	char c;

	zt_init(argc, argv);
	for (int t = 0; t < 3; t++) {
		if (socketpair(AF_UNIX, types[t], 0, own[t]) || socketpair(AF_UNIX, types[t], 0, shared[t]))
			zt_skip("socketpair(AF_UNIX, %s): %s", names[t], strerror(errno));
		/* Pair 0 (in one task): both ways. */
		if (queue_msgs(own[t][0], 0, t, 0) || queue_msgs(own[t][1], 0, t, 1))
			zt_fail("%s: queueing data in the task's own pair", names[t]);
		/* Pair 1 (shared with the child): the parent's part. */
		if (queue_msgs(shared[t][0], 1, t, 0))
			zt_fail("%s: queueing data for the child", names[t]);
	}
	if (pipe(ready) || pipe(go))
		return 1;
	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		int bad = 0;

		close(ready[0]);
		close(go[1]);
		for (int t = 0; t < 3; t++) {
			close(own[t][0]);
			close(own[t][1]);
			close(shared[t][0]);
			if (queue_msgs(shared[t][1], 1, t, 1))
				_exit(100);
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(101);
		close(ready[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(102);
		for (int t = 0; t < 3; t++) {
			bad += check_type(shared[t][1], t, child_fail);
			bad += check_queue(shared[t][1], 1, t, 0, child_fail);
		}
		/* Always send the pings: the parent waits for them. */
		for (int t = 0; t < 3; t++) {
			char msg[32];
			snprintf(msg, sizeof(msg), "ping %s from child", names[t]);
			if (write(shared[t][1], msg, strlen(msg)) != (ssize_t)strlen(msg)) {
				child_fail("%s: ping after restore: errno %d", names[t], errno);
				bad++;
			}
		}
		for (int t = 0; t < 3; t++) {
			char buf[64], msg[32];
			snprintf(msg, sizeof(msg), "pong %s from parent", names[t]);
			ssize_t n = recv(shared[t][1], buf, sizeof(buf), 0);
			if (n != (ssize_t)strlen(msg) || memcmp(buf, msg, n)) {
				child_fail("%s: pong after restore: read %zd bytes, want \"%s\"", names[t], n, msg);
				bad++;
			}
		}
		_exit(bad ? 1 : 0);
	}
	close(ready[1]);
	close(go[0]);
	for (int t = 0; t < 3; t++)
		close(shared[t][1]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child died in setup");
	close(ready[0]);

	zt_ready();
	zt_wait_term();

	for (int t = 0; t < 3; t++) {
		check_type(own[t][0], t, parent_fail);
		check_type(own[t][1], t, parent_fail);
		check_type(shared[t][0], t, parent_fail);
		check_queue(own[t][1], 0, t, 0, parent_fail);
		check_queue(own[t][0], 0, t, 1, parent_fail);
		check_queue(shared[t][0], 1, t, 1, parent_fail);
	}
	for (int t = 0; t < 3; t++) {
		char what[64];
		snprintf(what, sizeof(what), "%s pair 0, end 0 to end 1", names[t]);
		exchange(own[t][0], own[t][1], "new data one way", what, parent_fail);
		snprintf(what, sizeof(what), "%s pair 0, end 1 to end 0", names[t]);
		exchange(own[t][1], own[t][0], "and new data the other way", what, parent_fail);
	}
	if (write(go[1], "g", 1) != 1)
		zt_fail("waking the child");
	for (int t = 0; t < 3; t++) {
		char buf[64], msg[32];
		snprintf(msg, sizeof(msg), "ping %s from child", names[t]);
		ssize_t n = recv(shared[t][0], buf, sizeof(buf), 0);
		if (n != (ssize_t)strlen(msg) || memcmp(buf, msg, n))
			zt_fail("%s: ping from the child: read %zd bytes, want \"%s\"", names[t], n, msg);
		snprintf(msg, sizeof(msg), "pong %s from parent", names[t]);
		if (write(shared[t][0], msg, strlen(msg)) != (ssize_t)strlen(msg))
			zt_fail("%s: pong to the child: errno %d", names[t], errno);
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("child ended with status 0x%x", status);
	return zt_finish();
}
