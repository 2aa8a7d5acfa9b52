// zdtm: desc: UDP sockets, IPv4 on 127.0.0.1 and IPv6 on ::1: an unconnected bound one, one bound then connected to it, one connected to it without a bind (the port comes from connect), one never bound; a dual-stack one on :: with an IPv4 socket connected to it, and an IPv6 socket connected to a v4-mapped address; after restore each has the same address and peer, datagrams go both ways between each connected socket and its peer, a connected socket still takes nothing from others, and the unbound one gets a port when it sends
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

enum { A4, B4, C4, D4, A6, B6, C6, D6, E6, F4, G6, NSK };

static const char *names[NSK] = {
	[A4] = "IPv4 unconnected", [B4] = "IPv4 bound and connected", [C4] = "IPv4 connected", [D4] = "IPv4 unbound",
	[A6] = "IPv6 unconnected", [B6] = "IPv6 bound and connected", [C6] = "IPv6 connected", [D6] = "IPv6 unbound",
	[E6] = "dual-stack on ::", [F4] = "IPv4 connected to the dual-stack one", [G6] = "IPv6 connected to a v4-mapped address",
};

/* Who each socket is connected to (-1: nobody). */
static const int peer_of[NSK] = {
	[A4] = -1, [B4] = A4, [C4] = A4, [D4] = -1, [A6] = -1, [B6] = A6, [C6] = A6, [D6] = -1, [E6] = -1, [F4] = E6, [G6] = A4,
};

struct ends {
	struct sockaddr_in6 name[NSK], peer[NSK];
	int peer_err[NSK];
};

static int sk[NSK];

static const char *str(const void *sa)
{
	static char bufs[4][INET6_ADDRSTRLEN + 16];
	static int n;
	char *b = bufs[n++ % 4], host[INET6_ADDRSTRLEN];
	const struct sockaddr_in6 *a6 = sa;
	const struct sockaddr_in *a4 = sa;

	if (a6->sin6_family == AF_INET6) {
		inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof host);
		snprintf(b, sizeof bufs[0], "[%s]:%d", host, ntohs(a6->sin6_port));
	} else {
		inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
		snprintf(b, sizeof bufs[0], "%s:%d", host, ntohs(a4->sin_port));
	}
	return b;
}

/* The same endpoint: an IPv4 address equals its v4-mapped IPv6 form. */
static int same_ep(const void *x, const void *y)
{
	const struct sockaddr_in6 *a = x, *b = y;
	unsigned char ma[16], mb[16];

	if (a->sin6_port != b->sin6_port) /* sin_port is at the same offset */
		return 0;
	for (int i = 0; i < 2; i++) {
		const struct sockaddr_in6 *s = i ? b : a;
		unsigned char *m = i ? mb : ma;
		if (s->sin6_family == AF_INET6)
			memcpy(m, &s->sin6_addr, 16);
		else {
			memset(m, 0, 10);
			m[10] = m[11] = 0xff;
			memcpy(m + 12, &((const struct sockaddr_in *)s)->sin_addr, 4);
		}
	}
	return !memcmp(ma, mb, 16);
}

static void look(struct ends *e)
{
	memset(e, 0, sizeof *e);
	for (int i = 0; i < NSK; i++) {
		socklen_t l = sizeof e->name[i];
		if (getsockname(sk[i], (struct sockaddr *)&e->name[i], &l))
			zt_fail("%s: getsockname: %m", names[i]);
		l = sizeof e->peer[i];
		if (getpeername(sk[i], (struct sockaddr *)&e->peer[i], &l))
			e->peer_err[i] = errno;
	}
}

static int udp(int family, const char *host, int port)
{
	int fd = socket(family, SOCK_DGRAM, 0);
	if (fd < 0)
		zt_skip("socket: %m");
	if (!host)
		return fd;
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port)};
	int ok = family == AF_INET6 ? inet_pton(AF_INET6, host, &a6.sin6_addr) : inet_pton(AF_INET, host, &a4.sin_addr);
	if (ok != 1 || bind(fd, family == AF_INET6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
			    family == AF_INET6 ? sizeof a6 : sizeof a4))
		zt_skip("bind %s: %m", host);
	return fd;
}

static void connect_to(int i, int family, const struct sockaddr_in6 *to)
{
	if (connect(sk[i], (const struct sockaddr *)to, family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in)))
		zt_skip("%s: connect to %s: %m", names[i], str(to));
}

/* A datagram for fd within 5 s; returns its length, -1 on none. */
static int recv_wait(int fd, char *buf, size_t len, struct sockaddr_in6 *from)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	socklen_t fl = sizeof *from;

	if (poll(&p, 1, 5000) != 1)
		return -1;
	return recvfrom(fd, buf, len - 1, MSG_DONTWAIT, (struct sockaddr *)from, &fl);
}

/* x sends to p (by send when connected, else sendto); p must get it from
 * x's own address and answer; x must get the answer. */
static void exchange(int x, int p)
{
	struct sockaddr_in6 xname, pname, from;
	socklen_t l = sizeof xname;
	char msg[64], buf[64];
	int n;

	snprintf(msg, sizeof msg, "from %d to %d", x, p);
	l = sizeof pname;
	getsockname(sk[p], (struct sockaddr *)&pname, &l);
	if (pname.sin6_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&pname.sin6_addr))
		pname.sin6_addr = in6addr_loopback; /* bound to ::, reached on ::1 */
	if (peer_of[x] == p) {
		/* The answer comes from where x is connected to. */
		l = sizeof pname;
		getpeername(sk[x], (struct sockaddr *)&pname, &l);
		n = send(sk[x], msg, strlen(msg), 0);
	} else {
		/* An unconnected sender of the other family uses the v4-mapped form. */
		n = sendto(sk[x], msg, strlen(msg), 0, (struct sockaddr *)&pname,
			   pname.sin6_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	}
	if (n != (int)strlen(msg)) {
		zt_fail("%s: send to %s: %m", names[x], names[p]);
		return;
	}
	l = sizeof xname;
	getsockname(sk[x], (struct sockaddr *)&xname, &l); /* after the send: an unbound socket has a port now */
	/* A socket bound to the wildcard address sends from loopback here. */
	if (xname.sin6_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&xname.sin6_addr))
		xname.sin6_addr = in6addr_loopback;
	else if (xname.sin6_family == AF_INET && ((struct sockaddr_in *)&xname)->sin_addr.s_addr == htonl(INADDR_ANY))
		((struct sockaddr_in *)&xname)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	n = recv_wait(sk[p], buf, sizeof buf, &from);
	if (n < 0) {
		zt_fail("%s: nothing came from %s", names[p], names[x]);
		return;
	}
	buf[n] = 0;
	if (strcmp(buf, msg) || !same_ep(&from, &xname))
		zt_fail("%s: got %s from %s, want %s from %s (%s)", names[p], buf, str(&from), msg, str(&xname), names[x]);
	snprintf(msg, sizeof msg, "back from %d to %d", p, x);
	if (sendto(sk[p], msg, strlen(msg), 0, (struct sockaddr *)&from, from.sin6_family == AF_INET6 ? sizeof from : sizeof(struct sockaddr_in)) !=
	    (int)strlen(msg)) {
		zt_fail("%s: answer to %s: %m", names[p], str(&from));
		return;
	}
	n = recv_wait(sk[x], buf, sizeof buf, &from);
	if (n < 0) {
		zt_fail("%s: no answer from %s", names[x], names[p]);
		return;
	}
	buf[n] = 0;
	if (strcmp(buf, msg) || !same_ep(&from, &pname))
		zt_fail("%s: got %s from %s, want %s from %s (%s)", names[x], buf, str(&from), msg, str(&pname), names[p]);
}

/* A socket connected to peer takes nothing from another sender. */
static void filtered(int x, int other)
{
	struct sockaddr_in6 xname, from;
	socklen_t l = sizeof xname;
	char buf[64];
	int n;

	getsockname(sk[x], (struct sockaddr *)&xname, &l);
	if (sendto(sk[other], "intruder", 8, 0, (struct sockaddr *)&xname,
		   xname.sin6_family == AF_INET6 ? sizeof xname : sizeof(struct sockaddr_in)) != 8) {
		zt_fail("%s: sendto %s: %m", names[other], names[x]);
		return;
	}
	if (sendto(sk[peer_of[x]], "peer", 4, 0, (struct sockaddr *)&xname,
		   xname.sin6_family == AF_INET6 ? sizeof xname : sizeof(struct sockaddr_in)) != 4) {
		zt_fail("%s: sendto %s: %m", names[peer_of[x]], names[x]);
		return;
	}
	n = recv_wait(sk[x], buf, sizeof buf, &from);
	buf[n < 0 ? 0 : n] = 0;
	if (n != 4 || strcmp(buf, "peer"))
		zt_fail("%s: got \"%s\" from %s, want only \"peer\" from %s: is it connected?", names[x], buf, str(&from), names[peer_of[x]]);
}

int main(int argc, char **argv)
{
	struct ends before, after;
	int zero = 0;

	zt_init(argc, argv);
	sk[A4] = udp(AF_INET, "127.0.0.1", 0);
	sk[B4] = udp(AF_INET, "127.0.0.1", 0);
	sk[C4] = udp(AF_INET, NULL, 0);
	sk[D4] = udp(AF_INET, NULL, 0);
	sk[A6] = udp(AF_INET6, "::1", 0);
	sk[B6] = udp(AF_INET6, "::1", 0);
	sk[C6] = udp(AF_INET6, NULL, 0);
	sk[D6] = udp(AF_INET6, NULL, 0);
	sk[E6] = socket(AF_INET6, SOCK_DGRAM, 0);
	setsockopt(sk[E6], IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	if (bind(sk[E6], (struct sockaddr *)&any, sizeof any))
		zt_skip("bind [::]:0: %m");
	sk[F4] = udp(AF_INET, NULL, 0);
	sk[G6] = udp(AF_INET6, NULL, 0);
	look(&before);

	struct sockaddr_in to4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = before.name[A4].sin6_port};
	connect_to(B4, AF_INET, (struct sockaddr_in6 *)&to4);
	connect_to(C4, AF_INET, (struct sockaddr_in6 *)&to4);
	connect_to(B6, AF_INET6, &before.name[A6]);
	connect_to(C6, AF_INET6, &before.name[A6]);
	to4.sin_port = before.name[E6].sin6_port;
	connect_to(F4, AF_INET, (struct sockaddr_in6 *)&to4);
	struct sockaddr_in6 mapped = {.sin6_family = AF_INET6, .sin6_port = before.name[A4].sin6_port};
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &mapped.sin6_addr);
	connect_to(G6, AF_INET6, &mapped);
	/* They work before the checkpoint; nothing is left queued. */
	for (int i = 0; i < NSK; i++)
		if (peer_of[i] >= 0)
			exchange(i, peer_of[i]);
	look(&before);
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	look(&after);
	for (int i = 0; i < NSK; i++) {
		if (memcmp(&before.name[i], &after.name[i], sizeof before.name[i]))
			zt_fail("%s: bound to %s, was %s", names[i], str(&after.name[i]), str(&before.name[i]));
		if (before.peer_err[i] != after.peer_err[i])
			zt_fail("%s: getpeername: %s, was %s", names[i], strerror(after.peer_err[i]), strerror(before.peer_err[i]));
		else if (!before.peer_err[i] && memcmp(&before.peer[i], &after.peer[i], sizeof before.peer[i]))
			zt_fail("%s: connected to %s, was %s", names[i], str(&after.peer[i]), str(&before.peer[i]));
	}
	if (zt_failures())
		return zt_finish();
	for (int i = 0; i < NSK; i++)
		if (peer_of[i] >= 0)
			exchange(i, peer_of[i]);
	filtered(B4, D4);
	filtered(C6, D6);
	filtered(F4, A4);
	/* The unbound sockets get a port when they send, and answers reach it. */
	exchange(D4, A4);
	exchange(D6, A6);
	exchange(D6, E6);
	return zt_finish();
}
