// zdtm: desc: IPv6 TCP sockets: a listener on ::1, a dual-stack listener on :: (IPV6_V6ONLY 0), a v6-only listener on :: whose port an IPv4 socket holds on 0.0.0.0 beside it, a listener on the v4-mapped ::ffff:127.0.0.1, an unconnected socket bound to ::1 and an unbound v6-only one; after restore each has its address, port and IPV6_V6ONLY, the listeners accept IPv6 and IPv4 clients as before (the v6-only one refuses IPv4), and the bound socket connects from its own port
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

enum { L6, LD, LO, LM, U6, R6, H4, NSK };

static const char *names[NSK] = {
	[L6] = "listener on ::1",
	[LD] = "dual-stack listener on ::",
	[LO] = "v6-only listener on ::",
	[LM] = "listener on ::ffff:127.0.0.1",
	[U6] = "unconnected socket bound to ::1",
	[R6] = "unbound v6-only socket",
	[H4] = "IPv4 socket on 0.0.0.0 beside the v6-only listener",
};

struct state {
	struct sockaddr_in6 addr[NSK]; /* H4's is a sockaddr_in */
	int v6only[NSK];
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

static void look(struct state *s)
{
	memset(s, 0, sizeof *s);
	for (int i = 0; i < NSK; i++) {
		socklen_t l = sizeof s->addr[i];
		if (getsockname(sk[i], (struct sockaddr *)&s->addr[i], &l))
			zt_fail("%s: getsockname: %m", names[i]);
		s->v6only[i] = -1;
		if (i == H4)
			continue;
		l = sizeof s->v6only[i];
		if (getsockopt(sk[i], IPPROTO_IPV6, IPV6_V6ONLY, &s->v6only[i], &l))
			zt_fail("%s: IPV6_V6ONLY: %m", names[i]);
	}
}

static int port(const struct state *s, int i)
{
	return ntohs(s->addr[i].sin6_port);
}

static struct sockaddr_in6 in6(const char *host, int port)
{
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	inet_pton(AF_INET6, host, &a.sin6_addr);
	return a;
}

static struct sockaddr_in in4(const char *host, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, host, &a.sin_addr);
	return a;
}

static int set_v6only(int fd, int v)
{
	return setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
}

/* A listener on host, port from the kernel. */
static int listener(const char *host, int v6only, int backlog)
{
	struct sockaddr_in6 a = in6(host, 0);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);

	if (fd < 0 || set_v6only(fd, v6only) || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, backlog))
		zt_skip("IPv6 listener on %s: %m", host);
	return fd;
}

/* The v6-only listener on [::]:P and an IPv4 socket bound to 0.0.0.0:P,
 * which only the v6-only flag lets share the port. The kernel picks P
 * among IPv6 ports; an IPv4 socket elsewhere may have it: try again. */
static void v6only_pair(void)
{
	for (int try = 0; try < 50; try++) {
		struct sockaddr_in6 a;
		socklen_t l = sizeof a;
		sk[LO] = listener("::", 1, 2);
		getsockname(sk[LO], (struct sockaddr *)&a, &l);
		struct sockaddr_in b = in4("0.0.0.0", ntohs(a.sin6_port));
		sk[H4] = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(sk[H4], (struct sockaddr *)&b, sizeof b) == 0)
			return;
		if (errno != EADDRINUSE)
			zt_skip("bind 0.0.0.0:%d: %m", ntohs(a.sin6_port));
		close(sk[LO]);
		close(sk[H4]);
	}
	zt_skip("no port free on both 0.0.0.0 and ::");
}

/* Connect a new socket of family to addr; the accepted side's peer must be
 * the client's own address. Returns 0 or the connect error. */
static int connect_accept(int lfd, const char *what, const void *addr, socklen_t alen)
{
	int family = ((const struct sockaddr *)addr)->sa_family;
	int c = socket(family, SOCK_STREAM, 0), a, err = 0;

	if (connect(c, addr, alen)) {
		err = errno;
		close(c);
		return err;
	}
	struct sockaddr_in6 mine, peer;
	socklen_t ml = sizeof mine, pl = sizeof peer;
	getsockname(c, (struct sockaddr *)&mine, &ml);
	a = accept(lfd, (struct sockaddr *)&peer, &pl);
	if (a < 0)
		zt_fail("%s: accept after connecting to %s: %m", what, str(addr));
	else {
		/* An IPv4 client shows as ::ffff:a.b.c.d on an IPv6 listener. */
		int same = family == AF_INET6 ? !memcmp(&peer.sin6_addr, &mine.sin6_addr, 16) && peer.sin6_port == mine.sin6_port
					      : peer.sin6_port == ((struct sockaddr_in *)&mine)->sin_port &&
							!memcmp((char *)&peer.sin6_addr + 12, &((struct sockaddr_in *)&mine)->sin_addr, 4);
		if (!same)
			zt_fail("%s: accepted a client from %s, but the client is %s", what, str(&peer), str(&mine));
		close(a);
	}
	close(c);
	return 0;
}

static void expect_accept(int lfd, const char *what, const void *addr, socklen_t alen)
{
	int err = connect_accept(lfd, what, addr, alen);
	if (err)
		zt_fail("%s: connect to %s: %s", what, str(addr), strerror(err));
}

int main(int argc, char **argv)
{
	struct state before, after;

	zt_init(argc, argv);
	sk[L6] = listener("::1", 0, 5);
	sk[LD] = listener("::", 0, 3);
	v6only_pair();
	sk[LM] = listener("::ffff:127.0.0.1", 0, 4);
	struct sockaddr_in6 lb = in6("::1", 0);
	sk[U6] = socket(AF_INET6, SOCK_STREAM, 0);
	if (bind(sk[U6], (struct sockaddr *)&lb, sizeof lb))
		zt_skip("bind [::1]:0: %m");
	sk[R6] = socket(AF_INET6, SOCK_STREAM, 0);
	set_v6only(sk[R6], 1);
	look(&before);
	if (before.v6only[LO] != 1 || before.v6only[LD] != 0 || before.v6only[R6] != 1)
		zt_fail("IPV6_V6ONLY before the checkpoint: %d %d %d, want 1 0 1", before.v6only[LO], before.v6only[LD], before.v6only[R6]);
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	look(&after);
	for (int i = 0; i < NSK; i++) {
		if (memcmp(&before.addr[i], &after.addr[i], sizeof before.addr[i]))
			zt_fail("%s: bound to %s, was %s", names[i], str(&after.addr[i]), str(&before.addr[i]));
		if (before.v6only[i] != after.v6only[i])
			zt_fail("%s: IPV6_V6ONLY %d, was %d", names[i], after.v6only[i], before.v6only[i]);
	}
	if (zt_failures())
		return zt_finish();

	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	a6 = in6("::1", port(&after, L6));
	expect_accept(sk[L6], names[L6], &a6, sizeof a6);

	a6 = in6("::1", port(&after, LD));
	expect_accept(sk[LD], names[LD], &a6, sizeof a6);
	a4 = in4("127.0.0.1", port(&after, LD));
	expect_accept(sk[LD], names[LD], &a4, sizeof a4);

	a6 = in6("::1", port(&after, LO));
	expect_accept(sk[LO], names[LO], &a6, sizeof a6);
	/* 127.0.0.1:P reaches the IPv4 socket, which does not listen. */
	a4 = in4("127.0.0.1", port(&after, LO));
	int err = connect_accept(sk[LO], names[LO], &a4, sizeof a4);
	if (err != ECONNREFUSED)
		zt_fail("%s: an IPv4 client connecting to %s got %s, want connection refused", names[LO], str(&a4), strerror(err));

	a4 = in4("127.0.0.1", port(&after, LM));
	expect_accept(sk[LM], names[LM], &a4, sizeof a4);

	/* The bound socket connects from its own address and port. */
	a6 = in6("::1", port(&after, L6));
	if (connect(sk[U6], (struct sockaddr *)&a6, sizeof a6))
		zt_fail("%s: connect to %s: %m", names[U6], str(&a6));
	else {
		struct sockaddr_in6 peer;
		socklen_t pl = sizeof peer;
		int a = accept(sk[L6], (struct sockaddr *)&peer, &pl);
		if (a < 0 || memcmp(&peer.sin6_addr, &after.addr[U6].sin6_addr, 16) || peer.sin6_port != after.addr[U6].sin6_port)
			zt_fail("%s: the listener accepted %s (%m), want %s", names[U6], a < 0 ? "nothing" : str(&peer), str(&after.addr[U6]));
	}
	/* The unbound one still binds, to a port of its own choosing. */
	struct sockaddr_in6 any = in6("::", 0);
	if (bind(sk[R6], (struct sockaddr *)&any, sizeof any))
		zt_fail("%s: bind [::]:0: %m", names[R6]);
	return zt_finish();
}
