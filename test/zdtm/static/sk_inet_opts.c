// zdtm: desc: socket options of IPv4 and IPv6 TCP listeners, unconnected TCP sockets and UDP sockets, each set to a value of its own on each socket before the checkpoint: SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_NODELAY, TCP_CORK, SO_SNDBUF, SO_RCVBUF, SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER (also on with 0 s), SO_PRIORITY, SO_MARK, IP_TOS, IP_TTL, IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_V6ONLY, SO_BINDTODEVICE lo, SO_BROADCAST, IP_PKTINFO and IPV6_RECVPKTINFO (UDP), SO_OOBINLINE, IP_FREEBIND, SO_RCVLOWAT; and a TCP listener and a UDP socket left with every default; after restore every option of every socket reads back as before (SO_BUF_LOCK too: a default socket must not gain locked buffers)
// zdtm: modes: restore snapshot twice predump
/* CRIU 4.2 keeps neither IPV6_TCLASS nor IPV6_UNICAST_HOPS: sk_inet_opts_criu
 * checks the rest with it. */
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#ifndef SO_BUF_LOCK
#define SO_BUF_LOCK 72
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif

enum { TL4, TL6, TU4, TU6, UD4, UD6, TD4, UDD4, NSK };

static const struct sk {
	const char *name;
	int family, type;
	const char *bind; /* NULL: never bound */
	int listen, defaults;
} sks[NSK] = {
	[TL4] = {"TCP listener on 127.0.0.1", AF_INET, SOCK_STREAM, "127.0.0.1", 1},
	[TL6] = {"TCP listener on ::1", AF_INET6, SOCK_STREAM, "::1", 1},
	[TU4] = {"unconnected TCP socket on 127.0.0.1", AF_INET, SOCK_STREAM, "127.0.0.1"},
	[TU6] = {"unbound TCP IPv6 socket", AF_INET6, SOCK_STREAM, NULL},
	[UD4] = {"UDP socket on 127.0.0.1", AF_INET, SOCK_DGRAM, "127.0.0.1"},
	[UD6] = {"UDP socket on ::1", AF_INET6, SOCK_DGRAM, "::1"},
	[TD4] = {"TCP listener with default options", AF_INET, SOCK_STREAM, "127.0.0.1", 1, 1},
	[UDD4] = {"unbound UDP socket with default options", AF_INET, SOCK_DGRAM, NULL, 0, 1},
};

enum kind { INT, TV, LINGER, DEV };
enum { ALL = 0, TCP = 1, UDP = 2, V4 = 4, V6 = 8 };

/* An option, where it applies, and the value each socket gets (from i,
 * the socket's index); set: 0 only read, never set (SO_BUF_LOCK). */
static const struct opt {
	const char *name;
	int level, opt, kind, only, set;
	int base, step;
} opts[] = {
	{"SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR, INT, ALL, 1, 1, 0},
	{"SO_REUSEPORT", SOL_SOCKET, SO_REUSEPORT, INT, ALL, 1, 1, 0},
	{"SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, INT, TCP, 1, 1, 0},
	{"TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, INT, TCP, 1, 100, 7},
	{"TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, INT, TCP, 1, 20, 3},
	{"TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, INT, TCP, 1, 3, 1},
	{"TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, INT, TCP, 1, 1, 0},
	{"TCP_CORK", IPPROTO_TCP, TCP_CORK, INT, TCP, 1, 1, 0},
	{"SO_SNDBUF", SOL_SOCKET, SO_SNDBUF, INT, ALL, 1, 12000, 1000},
	{"SO_RCVBUF", SOL_SOCKET, SO_RCVBUF, INT, ALL, 1, 23000, 1000},
	{"SO_BUF_LOCK", SOL_SOCKET, SO_BUF_LOCK, INT, ALL, 0},
	{"SO_RCVTIMEO", SOL_SOCKET, SO_RCVTIMEO, TV, ALL, 1, 1, 1},
	{"SO_SNDTIMEO", SOL_SOCKET, SO_SNDTIMEO, TV, ALL, 1, 2, 1},
	{"SO_LINGER", SOL_SOCKET, SO_LINGER, LINGER, ALL, 1, 0, 3},
	{"SO_MARK", SOL_SOCKET, SO_MARK, INT, ALL, 1, 0x100, 1},
	{"IP_TOS", IPPROTO_IP, IP_TOS, INT, V4, 1, 0x20, 4},
	{"IP_TTL", IPPROTO_IP, IP_TTL, INT, V4, 1, 30, 1},
	{"IP_FREEBIND", IPPROTO_IP, IP_FREEBIND, INT, V4, 1, 1, 0},
#ifndef CRIU_SUBSET
	{"IPV6_TCLASS", IPPROTO_IPV6, IPV6_TCLASS, INT, V6, 1, 0x40, 4},
	{"IPV6_UNICAST_HOPS", IPPROTO_IPV6, IPV6_UNICAST_HOPS, INT, V6, 1, 40, 1},
#endif
	{"IPV6_FREEBIND", IPPROTO_IPV6, IPV6_FREEBIND, INT, V6, 1, 1, 0},
	{"IP_PKTINFO", IPPROTO_IP, IP_PKTINFO, INT, V4 | UDP, 1, 1, 0},
	{"IPV6_RECVPKTINFO", IPPROTO_IPV6, IPV6_RECVPKTINFO, INT, V6 | UDP, 1, 1, 0},
	{"IPV6_V6ONLY", IPPROTO_IPV6, IPV6_V6ONLY, INT, V6, 1, 1, 0},
	{"SO_BINDTODEVICE", SOL_SOCKET, SO_BINDTODEVICE, DEV, ALL, 1},
	{"SO_BROADCAST", SOL_SOCKET, SO_BROADCAST, INT, UDP, 1, 1, 0},
	{"SO_OOBINLINE", SOL_SOCKET, SO_OOBINLINE, INT, ALL, 1, 1, 0},
	{"SO_RCVLOWAT", SOL_SOCKET, SO_RCVLOWAT, INT, ALL, 1, 7, 1},
	/* After IP_TOS, which sets the priority from the TOS. */
	{"SO_PRIORITY", SOL_SOCKET, SO_PRIORITY, INT, ALL, 1, 1, 1},
};
#define NOPT (int)(sizeof opts / sizeof opts[0])

struct val {
	socklen_t len;
	int err;
	union {
		int i;
		struct timeval tv;
		struct linger l;
		char dev[32];
	} u;
};

static int fds[NSK];
static struct val before[NSK][NOPT], after[NSK][NOPT];

static int applies(const struct sk *s, const struct opt *o)
{
	if ((o->only & TCP) && s->type != SOCK_STREAM)
		return 0;
	if ((o->only & UDP) && s->type != SOCK_DGRAM)
		return 0;
	if ((o->only & V4) && s->family != AF_INET)
		return 0;
	if ((o->only & V6) && s->family != AF_INET6)
		return 0;
	return 1;
}

/* SO_BINDTODEVICE on every other socket only, to see it stay where set. */
static int wants_dev(int i)
{
	return i == TL4 || i == TU6 || i == UD6;
}

static const char *show(const struct opt *o, const struct val *v)
{
	static char bufs[2][64];
	static int n;
	char *b = bufs[n++ % 2];

	if (v->err)
		snprintf(b, sizeof bufs[0], "error %s", strerror(v->err));
	else if (o->kind == TV)
		snprintf(b, sizeof bufs[0], "%ld.%06ld s", (long)v->u.tv.tv_sec, (long)v->u.tv.tv_usec);
	else if (o->kind == LINGER)
		snprintf(b, sizeof bufs[0], "{onoff %d, linger %d}", v->u.l.l_onoff, v->u.l.l_linger);
	else if (o->kind == DEV)
		snprintf(b, sizeof bufs[0], "\"%.*s\"", (int)v->len, v->u.dev);
	else
		snprintf(b, sizeof bufs[0], "%d", v->u.i);
	return b;
}

static void look(struct val vals[NSK][NOPT])
{
	memset(vals, 0, sizeof(struct val) * NSK * NOPT);
	for (int i = 0; i < NSK; i++)
		for (int j = 0; j < NOPT; j++) {
			struct val *v = &vals[i][j];
			if (!applies(&sks[i], &opts[j]))
				continue;
			v->len = opts[j].kind == DEV ? sizeof v->u.dev : opts[j].kind == TV ? sizeof v->u.tv
								     : opts[j].kind == LINGER ? sizeof v->u.l
											      : sizeof v->u.i;
			if (getsockopt(fds[i], opts[j].level, opts[j].opt, &v->u, &v->len))
				v->err = errno;
		}
}

static void set(int i, const struct opt *o)
{
	int v = o->base + i * o->step;
	struct timeval tv = {v, 250000};
	struct linger l = {1, i == TL4 ? 0 : v}; /* on, and 0 s on one socket */
	const void *p = &v;
	socklen_t len = sizeof v;

	if (o->kind == TV)
		p = &tv, len = sizeof tv;
	else if (o->kind == LINGER)
		p = &l, len = sizeof l;
	else if (o->kind == DEV) {
		if (!wants_dev(i))
			return;
		p = "lo", len = 3;
	}
	if (setsockopt(fds[i], o->level, o->opt, p, len))
		zt_fail("%s: set %s: %m", sks[i].name, o->name);
}

int main(int argc, char **argv)
{
	struct val defaults[NOPT];

	zt_init(argc, argv);
	for (int i = 0; i < NSK; i++) {
		const struct sk *s = &sks[i];
		fds[i] = socket(s->family, s->type, 0);
		if (fds[i] < 0)
			zt_skip("socket: %m");
		if (!s->defaults)
			for (int j = 0; j < NOPT; j++)
				if (opts[j].set && applies(s, &opts[j]))
					set(i, &opts[j]);
		if (s->bind) {
			struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
			struct sockaddr_in a4 = {.sin_family = AF_INET};
			if (s->family == AF_INET6)
				inet_pton(AF_INET6, s->bind, &a6.sin6_addr);
			else
				inet_pton(AF_INET, s->bind, &a4.sin_addr);
			if (bind(fds[i], s->family == AF_INET6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4,
				 s->family == AF_INET6 ? sizeof a6 : sizeof a4))
				zt_skip("%s: bind: %m", s->name);
		}
		if (s->listen && listen(fds[i], 5 + i))
			zt_skip("%s: listen: %m", s->name);
	}
	look(before);
	/* Each value set differs from the default, as a fresh socket of the
	 * same kind shows it. */
	for (int i = 0; i < NSK; i++) {
		if (sks[i].defaults)
			continue;
		int fresh = socket(sks[i].family, sks[i].type, 0);
		int keep = fds[i];
		fds[i] = fresh;
		look(after);
		memcpy(defaults, after[i], sizeof defaults);
		fds[i] = keep;
		close(fresh);
		for (int j = 0; j < NOPT; j++)
			if (opts[j].set && applies(&sks[i], &opts[j]) && (opts[j].kind != DEV || wants_dev(i)) &&
			    !memcmp(&defaults[j], &before[i][j], sizeof defaults[j]))
				zt_fail("%s: %s is %s, the default", sks[i].name, opts[j].name, show(&opts[j], &before[i][j]));
	}
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	look(after);
	for (int i = 0; i < NSK; i++)
		for (int j = 0; j < NOPT; j++)
			if (memcmp(&before[i][j], &after[i][j], sizeof before[i][j]))
				zt_fail("%s: %s is %s, was %s", sks[i].name, opts[j].name, show(&opts[j], &after[i][j]),
					show(&opts[j], &before[i][j]));
	return zt_finish();
}
