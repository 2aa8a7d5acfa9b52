// zdtm: desc: unix socket options: SO_PASSCRED on one socket (nothing queued to it: after restore credentials come with new data), SO_SNDBUF and SO_RCVBUF not the default, SO_SNDTIMEO and SO_RCVTIMEO, O_NONBLOCK on one socket and FD_CLOEXEC on another fd; each reads back as set, and only where set
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
/* SO_PEEK_OFF, which CRIU 4.2 does not keep, is in sk_unix_peek_off. */
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>

static int get_int(int fd, int opt)
{
	int v = -12345;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, opt, &v, &len))
		return -12345;
	return v;
}

static struct timeval get_tv(int fd, int opt)
{
	struct timeval tv = { -1, -1 };
	socklen_t len = sizeof(tv);

	getsockopt(fd, SOL_SOCKET, opt, &tv, &len);
	return tv;
}

int main(int argc, char **argv)
{
	int pc[2], bf[2], nb[2], one = 1, snd = 20000, rcv = 30000;
	struct timeval sndto = { 1, 250000 }, rcvto = { 2, 500000 }, sndto_set, rcvto_set, zero = { 0, 0 };
	int sndbuf_set, rcvbuf_set, sndbuf_default, rcvbuf_default;

	zt_init(argc, argv);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, pc) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, bf) || socketpair(AF_UNIX, SOCK_STREAM, 0, nb))
		zt_skip("socketpair: %s", strerror(errno));

	if (setsockopt(pc[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		zt_fail("SO_PASSCRED: %s", strerror(errno));

	sndbuf_default = get_int(bf[1], SO_SNDBUF);
	rcvbuf_default = get_int(bf[1], SO_RCVBUF);
	if (setsockopt(bf[0], SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd)) ||
	    setsockopt(bf[0], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) ||
	    setsockopt(bf[1], SOL_SOCKET, SO_SNDTIMEO, &sndto, sizeof(sndto)) ||
	    setsockopt(bf[1], SOL_SOCKET, SO_RCVTIMEO, &rcvto, sizeof(rcvto)))
		zt_fail("buffer sizes or timeouts: %s", strerror(errno));
	sndbuf_set = get_int(bf[0], SO_SNDBUF);
	rcvbuf_set = get_int(bf[0], SO_RCVBUF);
	sndto_set = get_tv(bf[1], SO_SNDTIMEO);
	rcvto_set = get_tv(bf[1], SO_RCVTIMEO);
	if (sndbuf_set == sndbuf_default || rcvbuf_set == rcvbuf_default)
		zt_fail("buffer sizes %d/%d are the defaults %d/%d", sndbuf_set, rcvbuf_set, sndbuf_default, rcvbuf_default);
	if (!sndto_set.tv_sec && !sndto_set.tv_usec)
		zt_fail("SO_SNDTIMEO reads back as 0");

	if (fcntl(nb[0], F_SETFL, O_NONBLOCK) || fcntl(nb[1], F_SETFD, FD_CLOEXEC))
		zt_fail("fcntl: %s", strerror(errno));
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	/* SO_PASSCRED: set on one end only. */
	if (get_int(pc[0], SO_PASSCRED) != 1)
		zt_fail("SO_PASSCRED is %d, want 1", get_int(pc[0], SO_PASSCRED));
	if (get_int(pc[1], SO_PASSCRED) != 0)
		zt_fail("SO_PASSCRED on the peer is %d, want 0", get_int(pc[1], SO_PASSCRED));
	if (write(pc[1], "c", 1) != 1)
		zt_fail("write to the SO_PASSCRED socket: %s", strerror(errno));
	else {
		char c, cbuf[CMSG_SPACE(sizeof(struct ucred))];
		struct iovec iov = { &c, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm;

		if (recvmsg(pc[0], &mh, MSG_DONTWAIT) != 1 || c != 'c')
			zt_fail("SO_PASSCRED socket: no data (errno %d)", errno);
		else if (!(cm = CMSG_FIRSTHDR(&mh)) || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_CREDENTIALS)
			zt_fail("SO_PASSCRED socket: data without credentials");
		else {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(cm), sizeof(cr));
			if (cr.pid != getpid() || cr.uid != getuid() || cr.gid != getgid())
				zt_fail("SO_PASSCRED socket: credentials pid %d uid %d gid %d, want %d %d %d",
					cr.pid, cr.uid, cr.gid, getpid(), getuid(), getgid());
		}
	}

	char buf[32];

	/* Buffer sizes and timeouts as set; the peer's as they were. */
	if (get_int(bf[0], SO_SNDBUF) != sndbuf_set)
		zt_fail("SO_SNDBUF %d, want %d", get_int(bf[0], SO_SNDBUF), sndbuf_set);
	if (get_int(bf[0], SO_RCVBUF) != rcvbuf_set)
		zt_fail("SO_RCVBUF %d, want %d", get_int(bf[0], SO_RCVBUF), rcvbuf_set);
	if (get_int(bf[1], SO_SNDBUF) != sndbuf_default || get_int(bf[1], SO_RCVBUF) != rcvbuf_default)
		zt_fail("peer's SO_SNDBUF/SO_RCVBUF %d/%d, want the defaults %d/%d",
			get_int(bf[1], SO_SNDBUF), get_int(bf[1], SO_RCVBUF), sndbuf_default, rcvbuf_default);
	struct timeval tv = get_tv(bf[1], SO_SNDTIMEO);
	if (tv.tv_sec != sndto_set.tv_sec || tv.tv_usec != sndto_set.tv_usec)
		zt_fail("SO_SNDTIMEO %ld.%06ld, want %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec, (long)sndto_set.tv_sec, (long)sndto_set.tv_usec);
	tv = get_tv(bf[1], SO_RCVTIMEO);
	if (tv.tv_sec != rcvto_set.tv_sec || tv.tv_usec != rcvto_set.tv_usec)
		zt_fail("SO_RCVTIMEO %ld.%06ld, want %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec, (long)rcvto_set.tv_sec, (long)rcvto_set.tv_usec);
	tv = get_tv(bf[0], SO_RCVTIMEO);
	if (tv.tv_sec != zero.tv_sec || tv.tv_usec != zero.tv_usec)
		zt_fail("peer's SO_RCVTIMEO %ld.%06ld, want none", (long)tv.tv_sec, (long)tv.tv_usec);

	/* O_NONBLOCK and FD_CLOEXEC where set, and only there. */
	int fl0 = fcntl(nb[0], F_GETFL), fl1 = fcntl(nb[1], F_GETFL);
	if (!(fl0 & O_NONBLOCK) || (fl1 & O_NONBLOCK))
		zt_fail("O_NONBLOCK: flags 0%o and 0%o, want it on the first only", fl0, fl1);
	int fd0 = fcntl(nb[0], F_GETFD), fd1 = fcntl(nb[1], F_GETFD);
	if ((fd0 & FD_CLOEXEC) || !(fd1 & FD_CLOEXEC))
		zt_fail("FD_CLOEXEC: fd flags %d and %d, want it on the second only", fd0, fd1);
	if (read(nb[0], buf, 1) != -1 || errno != EAGAIN)
		zt_fail("the non-blocking socket does not say EAGAIN (errno %d)", errno);
	if (write(nb[0], "y", 1) != 1 || read(nb[1], buf, 1) != 1 || buf[0] != 'y')
		zt_fail("the non-blocking pair does not carry data");
	return zt_finish();
}
