// zdtm: desc: SO_PEEK_OFF on unix sockets with queued data: 3 on a stream socket with 16 bytes queued, 5 on a dgram socket with two datagrams queued, unset (-1) on their peers; after restore the offsets read back, a peek goes on from there (and moves the offset), and plain reads return the whole queue from its start
// zdtm: modes: restore snapshot twice predump
/*
 * No criu-* mode: CRIU 4.2 uses SO_PEEK_OFF itself to read a queue at dump
 * time and puts the task's value back, but keeps none in its images: after
 * its restore "SO_PEEK_OFF is -1, want 3" and the peek starts at byte 0.
 */
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <sys/socket.h>

static const char queued[] = "0123456789abcdef";
static const char dg1[] = "first datagram", dg2[] = "second one";

static int peek_off(int fd)
{
	int v = -12345;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &v, &len))
		return -12345;
	return v;
}

int main(int argc, char **argv)
{
	int st[2], dg[2], three = 3, five = 5;
	char buf[64];
	ssize_t n;

	zt_init(argc, argv);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg))
		zt_skip("socketpair: %s", strerror(errno));
	if (write(st[0], queued, 16) != 16 || write(dg[0], dg1, sizeof(dg1)) != sizeof(dg1) || write(dg[0], dg2, sizeof(dg2)) != sizeof(dg2))
		zt_fail("queueing data: %s", strerror(errno));
	if (setsockopt(st[1], SOL_SOCKET, SO_PEEK_OFF, &three, sizeof(three)) ||
	    setsockopt(dg[1], SOL_SOCKET, SO_PEEK_OFF, &five, sizeof(five)))
		zt_skip("SO_PEEK_OFF: %s", strerror(errno));
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	if (peek_off(st[0]) != -1 || peek_off(dg[0]) != -1)
		zt_fail("SO_PEEK_OFF on the peers is %d/%d, want -1", peek_off(st[0]), peek_off(dg[0]));

	/* Stream: peeking goes on at 3; a read takes from the start. */
	if (peek_off(st[1]) != 3)
		zt_fail("stream: SO_PEEK_OFF is %d, want 3", peek_off(st[1]));
	n = recv(st[1], buf, 4, MSG_PEEK | MSG_DONTWAIT);
	if (n != 4 || memcmp(buf, queued + 3, 4))
		zt_fail("stream: peek at offset 3: %zd bytes \"%.*s\", want \"3456\"", n, n > 0 ? (int)n : 0, buf);
	if (peek_off(st[1]) != 7)
		zt_fail("stream: SO_PEEK_OFF after peeking 4 bytes is %d, want 7", peek_off(st[1]));
	n = recv(st[1], buf, sizeof(buf), MSG_DONTWAIT);
	if (n != 16 || memcmp(buf, queued, 16))
		zt_fail("stream: queued data: %zd bytes \"%.*s\", want \"%s\"", n, n > 0 ? (int)n : 0, buf, queued);

	/* Dgram: the peek starts 5 bytes into the first datagram. */
	if (peek_off(dg[1]) != 5)
		zt_fail("dgram: SO_PEEK_OFF is %d, want 5", peek_off(dg[1]));
	n = recv(dg[1], buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	if (n != (ssize_t)sizeof(dg1) - 5 || memcmp(buf, dg1 + 5, n))
		zt_fail("dgram: peek at offset 5: %zd bytes \"%.*s\", want \"%s\"", n, n > 0 ? (int)n : 0, buf, dg1 + 5);
	n = recv(dg[1], buf, sizeof(buf), MSG_DONTWAIT);
	if (n != sizeof(dg1) || memcmp(buf, dg1, n))
		zt_fail("dgram: first datagram: %zd bytes \"%.*s\"", n, n > 0 ? (int)n : 0, buf);
	n = recv(dg[1], buf, sizeof(buf), MSG_DONTWAIT);
	if (n != sizeof(dg2) || memcmp(buf, dg2, n))
		zt_fail("dgram: second datagram: %zd bytes \"%.*s\"", n, n > 0 ? (int)n : 0, buf);
	return zt_finish();
}
