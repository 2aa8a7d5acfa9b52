// zdtm: desc: netlink sockets: a route socket bound by the kernel (autobind) listening to RTMGRP_LINK and RTMGRP_IPV4_IFADDR with NETLINK_EXT_ACK on, a uevent socket bound to port id 1000+pid in group 1, non-blocking, a generic socket never bound, and a SOCK_DGRAM route socket; after restore each has the same protocol, type, port id, groups and options, and the route socket answers a link dump request
// zdtm: modes: restore snapshot twice predump
// (CRIU 4.2 keeps neither the socket type nor NETLINK_* options: sk_netlink_criu checks the rest with it)
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct sk {
	const char *name;
	int fd, proto, type;
	struct sockaddr_nl addr;
	uint32_t groups[4];
	socklen_t glen;
	int extack;
};

static void snap(struct sk *s)
{
	socklen_t l = sizeof s->addr;
	memset(&s->addr, 0, sizeof s->addr);
	getsockname(s->fd, (struct sockaddr *)&s->addr, &l);
	s->glen = sizeof s->groups;
	memset(s->groups, 0, sizeof s->groups);
	getsockopt(s->fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, s->groups, &s->glen);
	l = sizeof s->extack;
	getsockopt(s->fd, SOL_NETLINK, NETLINK_EXT_ACK, &s->extack, &l);
	l = sizeof s->proto;
	getsockopt(s->fd, SOL_SOCKET, SO_PROTOCOL, &s->proto, &l);
	l = sizeof s->type;
	getsockopt(s->fd, SOL_SOCKET, SO_TYPE, &s->type, &l);
}

int main(int argc, char **argv)
{
#ifdef NL_BASIC
	enum { nsk = 3 };
	const int extack = 0, dgram = SOCK_RAW;
#else
	enum { nsk = 4 };
	const int extack = 1, dgram = SOCK_DGRAM;
#endif
	struct sk sks[4] = {{"route"}, {"uevent"}, {"generic"}, {"route dgram"}};
	struct sockaddr_nl a = {.nl_family = AF_NETLINK};

	zt_init(argc, argv);
	sks[0].fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	a.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR;
	if (sks[0].fd < 0 || bind(sks[0].fd, (struct sockaddr *)&a, sizeof a) ||
	    setsockopt(sks[0].fd, SOL_NETLINK, NETLINK_EXT_ACK, &extack, sizeof extack))
		zt_skip("route socket: %m");
	sks[1].fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
	a.nl_pid = 1000 + getpid();
	a.nl_groups = 1;
	if (sks[1].fd < 0 || bind(sks[1].fd, (struct sockaddr *)&a, sizeof a))
		zt_skip("uevent socket: %m");
	sks[2].fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
	sks[3].fd = socket(AF_NETLINK, dgram, NETLINK_ROUTE);
	if (sks[2].fd < 0 || sks[3].fd < 0)
		zt_skip("netlink sockets: %m");
	struct sk before[4];
	for (int i = 0; i < nsk; i++) {
		snap(&sks[i]);
		before[i] = sks[i];
	}
	zt_ready();
	zt_wait_term();
	for (int i = 0; i < nsk; i++) {
		snap(&sks[i]);
		struct sk *b = &before[i], *s = &sks[i];
		if (s->proto != b->proto || s->type != b->type)
			zt_fail("%s: protocol %d type %d, want %d %d", s->name, s->proto, s->type, b->proto, b->type);
		if (s->addr.nl_pid != b->addr.nl_pid || s->addr.nl_groups != b->addr.nl_groups)
			zt_fail("%s: port id %u groups %#x, want %u %#x", s->name, s->addr.nl_pid, s->addr.nl_groups, b->addr.nl_pid, b->addr.nl_groups);
		if (s->glen != b->glen || memcmp(s->groups, b->groups, sizeof s->groups))
			zt_fail("%s: memberships %#x (%u bytes), want %#x (%u bytes)", s->name, s->groups[0], s->glen, b->groups[0], b->glen);
		if (s->extack != b->extack)
			zt_fail("%s: NETLINK_EXT_ACK %d, want %d", s->name, s->extack, b->extack);
	}
	if (!(fcntl(sks[1].fd, F_GETFL) & O_NONBLOCK))
		zt_fail("uevent socket lost O_NONBLOCK");
	/* The route socket still talks to the kernel. */
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = {
		.h = {.nlmsg_len = sizeof req, .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 7},
		.g = {.rtgen_family = AF_UNSPEC},
	};
	static char buf[65536];
	if (send(sks[0].fd, &req, sizeof req, 0) != sizeof req)
		zt_fail("route request: %m");
	int n = recv(sks[0].fd, buf, sizeof buf, 0);
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (n < (int)sizeof *h || h->nlmsg_seq != 7 || h->nlmsg_type != RTM_NEWLINK)
		zt_fail("route answer: %d bytes, type %d seq %u", n, n > 0 ? h->nlmsg_type : -1, n > 0 ? h->nlmsg_seq : 0);
	return zt_finish();
}
