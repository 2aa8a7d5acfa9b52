// zdtm: desc: established TCP connections within the tree (IPv4, IPv6 and an IPv4-mapped IPv6 one), with --tcp-established: unread data both ways, a send queue with data the peer had no room for, and each half-closed state (FIN-WAIT-1 with its FIN unsent, FIN-WAIT-2 / CLOSE-WAIT, LAST-ACK, CLOSING); after restore each socket has its state, addresses and options, every byte arrives in order, each FIN arrives after the data, and the open connections carry new data both ways
// zdtm: modes: restore snapshot twice predump
// zdtm: opts: --tcp-established
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

/* A connection: c is the connecting end, s the accepted one. */
struct conn {
	const char *name;
	int c, s;
	long c_sent, s_sent; /* pattern bytes each end wrote */
	int c_state, s_state;
	int c_port, s_port;
};

enum { ESTAB, FULL, FW2, FW1, LASTACK, CLOSING, MAPPED, NCONN };
static struct conn conns[NCONN] = {
	{"established v4"}, {"full send queue v6"}, {"FIN-WAIT-2 / CLOSE-WAIT"}, {"FIN-WAIT-1, FIN unsent"},
	{"LAST-ACK"}, {"CLOSING"}, {"IPv4-mapped IPv6"},
};

static int state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof ti;
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l))
		return -1;
	return ti.tcpi_state;
}

static int port_of(int fd, int peer)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof a;
	if (peer)
		getpeername(fd, (struct sockaddr *)&a, &l);
	else
		getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.sin6_port);
}

/* pair connects a new client to a listener on addr (small receive buffers
 * when small), both ends non-blocking. */
static void pair(struct conn *k, int family, const char *addr, int small)
{
	int l = socket(family, SOCK_STREAM, 0), one = 1;
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	if (small) {
		int v = 4096;
		setsockopt(l, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	}
	if (family == AF_INET) {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		inet_pton(AF_INET, addr, &a->sin_addr);
		sl = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6;
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		sl = sizeof *a;
		int zero = 0;
		setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	}
	if (bind(l, (struct sockaddr *)&ss, sl) || listen(l, 1))
		zt_skip("listen on %s: %m", addr);
	getsockname(l, (struct sockaddr *)&ss, &sl);
	k->c = socket(family, SOCK_STREAM, 0);
	if (small) {
		int v = 4096;
		setsockopt(k->c, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	}
	setsockopt(k->c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(k->c, (struct sockaddr *)&ss, sl))
		zt_skip("connect to %s: %m", addr);
	k->s = accept(l, NULL, NULL);
	if (k->s < 0)
		zt_skip("accept: %m");
	close(l);
	fcntl(k->c, F_SETFL, O_NONBLOCK);
	fcntl(k->s, F_SETFL, O_NONBLOCK);
}

static unsigned char pat(long i, int salt) { return (unsigned char)(i * 7 + salt + i / 251); }

/* fill writes the pattern into fd until the peer has no more room. */
static long fill(int fd, int salt)
{
	unsigned char buf[4096];
	long n = 0;
	for (;;) {
		for (int i = 0; i < (int)sizeof buf; i++)
			buf[i] = pat(n + i, salt);
		ssize_t w = write(fd, buf, sizeof buf);
		if (w < 0) {
			if (errno != EAGAIN)
				zt_fail("fill: %m");
			/* Let the last segments land, then try once more. */
			usleep(20000);
			w = write(fd, buf, sizeof buf);
			if (w < 0)
				return n;
		}
		n += w;
	}
}

static void wait_state(int fd, int want, const char *who)
{
	for (int i = 0; i < 2000 && state(fd) != want; i++)
		usleep(1000);
	if (state(fd) != want)
		zt_skip("%s: state %d, not %d", who, state(fd), want);
}

/* drain reads n pattern bytes (and then, with eof, the end of the stream)
 * from fd. */
static void drain(int fd, long n, int salt, int eof, const char *who)
{
	unsigned char buf[4096];
	long got = 0;
	fcntl(fd, F_SETFL, 0);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while (got < n) {
		ssize_t r = read(fd, buf, n - got < (long)sizeof buf ? n - got : (long)sizeof buf);
		if (r <= 0) {
			zt_fail("%s: read after %ld of %ld bytes: %zd %m", who, got, n, r);
			return;
		}
		for (ssize_t i = 0; i < r; i++)
			if (buf[i] != pat(got + i, salt)) {
				zt_fail("%s: byte %ld is %d, want %d", who, got + i, buf[i], pat(got + i, salt));
				return;
			}
		got += r;
	}
	if (eof) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r != 0)
			zt_fail("%s: %zd more bytes (%m) where the peer's FIN was", who, r);
	}
}

static int iopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	getsockopt(fd, level, name, &v, &l);
	return v;
}

static const char *optNames[10] = {"SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "IP_TOS", "IP_TTL", "SO_PRIORITY", "SO_MARK", "SO_SNDTIMEO (s)", "server SO_REUSEADDR"};

static void sockopts(struct conn *k, int *v)
{
	struct timeval tv;
	socklen_t l = sizeof tv;
	v[0] = iopt(k->c, SOL_SOCKET, SO_KEEPALIVE);
	v[1] = iopt(k->c, IPPROTO_TCP, TCP_KEEPIDLE);
	v[2] = iopt(k->c, IPPROTO_TCP, TCP_KEEPINTVL);
	v[3] = iopt(k->c, IPPROTO_TCP, TCP_KEEPCNT);
	v[4] = iopt(k->c, IPPROTO_IP, IP_TOS);
	v[5] = iopt(k->c, IPPROTO_IP, IP_TTL);
	v[6] = iopt(k->c, SOL_SOCKET, SO_PRIORITY);
	v[7] = iopt(k->c, SOL_SOCKET, SO_MARK);
	getsockopt(k->c, SOL_SOCKET, SO_SNDTIMEO, &tv, &l);
	v[8] = tv.tv_sec;
	v[9] = iopt(k->s, SOL_SOCKET, SO_REUSEADDR);
}

static void exchange(struct conn *k)
{
	char buf[8];
	fcntl(k->c, F_SETFL, 0);
	fcntl(k->s, F_SETFL, 0);
	if (write(k->c, "ping", 4) != 4 || read(k->s, buf, 4) != 4 || memcmp(buf, "ping", 4) || write(k->s, "pong", 4) != 4 ||
	    read(k->c, buf, 4) != 4 || memcmp(buf, "pong", 4))
		zt_fail("%s: no exchange after restore: %m", k->name);
}

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	struct conn *k;

	/* Unread data both ways, and options that change behaviour. */
	k = &conns[ESTAB];
	pair(k, AF_INET, "127.0.0.1", 0);
	int on = 1, idle = 33, intvl = 7, cnt = 4, tos = 0x10, ttl = 9, prio = 3, mark = 77;
	struct timeval rto = {4, 500000};
	setsockopt(k->c, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
	setsockopt(k->c, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(k->c, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(k->c, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	setsockopt(k->c, IPPROTO_IP, IP_TOS, &tos, sizeof tos);
	setsockopt(k->c, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
	setsockopt(k->c, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio);
	setsockopt(k->c, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
	setsockopt(k->c, SOL_SOCKET, SO_SNDTIMEO, &rto, sizeof rto);
	setsockopt(k->s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	int optsBefore[10];
	sockopts(k, optsBefore);
	k->c_sent = write(k->c, "from-client", 11);
	k->s_sent = write(k->s, "from-server-x", 13);

	/* The client wrote more than the server has room for. */
	k = &conns[FULL];
	pair(k, AF_INET6, "::1", 1);
	k->c_sent = fill(k->c, 1);

	/* The client ended its side; the server has not read it. */
	k = &conns[FW2];
	pair(k, AF_INET, "127.0.0.1", 0);
	k->c_sent = write(k->c, "bye", 3);
	shutdown(k->c, SHUT_WR);
	wait_state(k->c, TCP_FIN_WAIT2, "FIN-WAIT-2");
	wait_state(k->s, TCP_CLOSE_WAIT, "CLOSE-WAIT");

	/* The client's FIN waits behind data the server has no room for. */
	k = &conns[FW1];
	pair(k, AF_INET, "127.0.0.1", 1);
	k->c_sent = fill(k->c, 2);
	shutdown(k->c, SHUT_WR);

	/* The server, told the client is done, ends too behind unsent data. */
	k = &conns[LASTACK];
	pair(k, AF_INET, "127.0.0.1", 1);
	shutdown(k->c, SHUT_WR);
	wait_state(k->s, TCP_CLOSE_WAIT, "CLOSE-WAIT before LAST-ACK");
	k->s_sent = fill(k->s, 3);
	shutdown(k->s, SHUT_WR);

	/* Both ended at once: the client's FIN is behind data, the server's
	 * arrives. */
	k = &conns[CLOSING];
	pair(k, AF_INET6, "::1", 1);
	k->c_sent = fill(k->c, 4);
	shutdown(k->c, SHUT_WR);
	shutdown(k->s, SHUT_WR);

	/* A dual-stack socket talking IPv4. */
	k = &conns[MAPPED];
	pair(k, AF_INET6, "::ffff:127.0.0.1", 0);
	k->s_sent = write(k->s, "mapped", 6);

	usleep(50000);
	for (int i = 0; i < NCONN; i++) {
		k = &conns[i];
		k->c_state = state(k->c);
		k->s_state = state(k->s);
		k->c_port = port_of(k->c, 0);
		k->s_port = port_of(k->s, 1);
	}
	if (conns[FW1].c_state != TCP_FIN_WAIT1 || conns[LASTACK].s_state != TCP_LAST_ACK || conns[CLOSING].c_state != TCP_CLOSING)
		zt_skip("states not reached: FIN-WAIT-1 %d, LAST-ACK %d, CLOSING %d", conns[FW1].c_state, conns[LASTACK].s_state,
			conns[CLOSING].c_state);

	zt_ready();
	zt_wait_term();

	for (int i = 0; i < NCONN; i++) {
		k = &conns[i];
		if (state(k->c) != k->c_state || state(k->s) != k->s_state)
			zt_fail("%s: states %d/%d, want %d/%d", k->name, state(k->c), state(k->s), k->c_state, k->s_state);
		if (port_of(k->c, 0) != k->c_port || port_of(k->s, 1) != k->s_port)
			zt_fail("%s: ports %d/%d, want %d/%d", k->name, port_of(k->c, 0), port_of(k->s, 1), k->c_port, k->s_port);
	}
	char buf[32];
	k = &conns[ESTAB];
	int optsAfter[10];
	sockopts(k, optsAfter);
	for (int i = 0; i < 10; i++)
		if (optsAfter[i] != optsBefore[i])
			zt_fail("%s: %s is %d, want %d", k->name, optNames[i], optsAfter[i], optsBefore[i]);
	fcntl(k->s, F_SETFL, 0);
	fcntl(k->c, F_SETFL, 0);
	if (read(k->s, buf, 11) != 11 || memcmp(buf, "from-client", 11))
		zt_fail("%s: the server's unread data is lost", k->name);
	if (read(k->c, buf, 13) != 13 || memcmp(buf, "from-server-x", 13))
		zt_fail("%s: the client's unread data is lost", k->name);
	exchange(k);

	k = &conns[FULL];
	drain(k->s, k->c_sent, 1, 0, k->name);
	exchange(k);

	k = &conns[FW2];
	fcntl(k->s, F_SETFL, 0);
	if (read(k->s, buf, 3) != 3 || memcmp(buf, "bye", 3) || read(k->s, buf, 1) != 0)
		zt_fail("%s: the server did not read bye then the end: %m", k->name);
	fcntl(k->c, F_SETFL, 0);
	if (write(k->s, "ok", 2) != 2 || read(k->c, buf, 2) != 2 || memcmp(buf, "ok", 2))
		zt_fail("%s: the half-closed client does not receive: %m", k->name);

	k = &conns[FW1];
	drain(k->s, k->c_sent, 2, 1, k->name);

	k = &conns[LASTACK];
	drain(k->c, k->s_sent, 3, 1, k->name);
	fcntl(k->s, F_SETFL, 0);
	if (read(k->s, buf, 1) != 0)
		zt_fail("%s: the server does not see the client's end", k->name);

	k = &conns[CLOSING];
	drain(k->s, k->c_sent, 4, 1, k->name);
	fcntl(k->c, F_SETFL, 0);
	if (read(k->c, buf, 1) != 0)
		zt_fail("%s: the client does not see the server's end", k->name);

	k = &conns[MAPPED];
	fcntl(k->c, F_SETFL, 0);
	if (read(k->c, buf, 6) != 6 || memcmp(buf, "mapped", 6))
		zt_fail("%s: unread data lost", k->name);
	exchange(k);
	return zt_finish();
}
