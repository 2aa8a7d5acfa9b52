// zdtm: desc: TCP listeners (IPv4 on 127.0.0.1 with SO_REUSEADDR, TCP_NODELAY, keepalive timers and backlog 9; IPv6 on ::1 with IPV6_V6ONLY), a TCP socket never connected, and UDP sockets (IPv4 bound with IP_TOS, IP_TTL and SO_RCVBUF, one connected to it, an unbound IPv6 one); after restore each has its address, port and options, the listeners accept new connections, and the UDP pair carries datagrams both ways
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static int l4, l6, raw, u4, uc, u6;

static int port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.sin6_port); /* same offset as sin_port */
}

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	getsockopt(fd, level, name, &v, &l);
	return v;
}

struct snap {
	int ports[6], reuse, nodelay, keepalive, keepidle, v6only, tos, ttl, rcvbuf;
};

static void snap(struct snap *s)
{
	int fds[6] = {l4, l6, raw, u4, uc, u6};
	for (int i = 0; i < 6; i++)
		s->ports[i] = port_of(fds[i]);
	s->reuse = opt(l4, SOL_SOCKET, SO_REUSEADDR);
	s->nodelay = opt(l4, IPPROTO_TCP, TCP_NODELAY);
	s->keepalive = opt(l4, SOL_SOCKET, SO_KEEPALIVE);
	s->keepidle = opt(l4, IPPROTO_TCP, TCP_KEEPIDLE);
	s->v6only = opt(l6, IPPROTO_IPV6, IPV6_V6ONLY);
	s->tos = opt(u4, IPPROTO_IP, IP_TOS);
	s->ttl = opt(u4, IPPROTO_IP, IP_TTL);
	s->rcvbuf = opt(u4, SOL_SOCKET, SO_RCVBUF);
}

int main(int argc, char **argv)
{
	int one = 1, v;
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

	zt_init(argc, argv);
	l4 = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(l4, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(l4, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	v = 77;
	setsockopt(l4, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v);
	if (bind(l4, (struct sockaddr *)&a4, sizeof a4) || listen(l4, 9))
		zt_skip("IPv4 loopback: %m");
	l6 = socket(AF_INET6, SOCK_STREAM, 0);
	setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(l6, (struct sockaddr *)&a6, sizeof a6) || listen(l6, 4))
		zt_skip("IPv6 loopback: %m");
	raw = socket(AF_INET, SOCK_STREAM, 0);
	u4 = socket(AF_INET, SOCK_DGRAM, 0);
	v = 0x10;
	setsockopt(u4, IPPROTO_IP, IP_TOS, &v, sizeof v);
	v = 17;
	setsockopt(u4, IPPROTO_IP, IP_TTL, &v, sizeof v);
	v = 65536;
	setsockopt(u4, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	if (bind(u4, (struct sockaddr *)&a4, sizeof a4))
		return 1;
	struct sockaddr_in to = a4;
	to.sin_port = htons(port_of(u4));
	uc = socket(AF_INET, SOCK_DGRAM, 0);
	if (connect(uc, (struct sockaddr *)&to, sizeof to))
		return 1;
	u6 = socket(AF_INET6, SOCK_DGRAM, 0);
	struct snap before, after;
	snap(&before);
	zt_ready();
	zt_wait_term();
	snap(&after);
	for (int i = 0; i < 6; i++)
		if (before.ports[i] != after.ports[i])
			zt_fail("socket %d: port %d, want %d", i, after.ports[i], before.ports[i]);
	if (memcmp(&before.reuse, &after.reuse, sizeof before - sizeof before.ports))
		zt_fail("options differ: reuse %d/%d nodelay %d/%d keepalive %d/%d keepidle %d/%d v6only %d/%d tos %d/%d ttl %d/%d rcvbuf %d/%d",
			after.reuse, before.reuse, after.nodelay, before.nodelay, after.keepalive, before.keepalive, after.keepidle, before.keepidle,
			after.v6only, before.v6only, after.tos, before.tos, after.ttl, before.ttl, after.rcvbuf, before.rcvbuf);
	/* The listeners accept. */
	struct sockaddr_in c4 = a4;
	c4.sin_port = htons(after.ports[0]);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&c4, sizeof c4) || accept(l4, NULL, NULL) < 0)
		zt_fail("IPv4 listener: %m");
	struct sockaddr_in6 c6 = a6;
	c6.sin6_port = htons(after.ports[1]);
	c = socket(AF_INET6, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&c6, sizeof c6) || accept(l6, NULL, NULL) < 0)
		zt_fail("IPv6 listener: %m");
	/* The UDP pair. */
	char buf[16];
	struct sockaddr_in from;
	socklen_t fl = sizeof from;
	if (send(uc, "ping", 4, 0) != 4 || recvfrom(u4, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) != 4 ||
	    sendto(u4, "pong", 4, 0, (struct sockaddr *)&from, fl) != 4 || recv(uc, buf, sizeof buf, 0) != 4 || memcmp(buf, "pong", 4))
		zt_fail("UDP pair: %m");
	return zt_finish();
}
