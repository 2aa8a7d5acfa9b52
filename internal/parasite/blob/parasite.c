/*
 * The parasite: a freestanding blob gockpt runs inside a stopped task to
 * read state only the task itself can see. It connects to gockpt, serves
 * one request per packet, and leaves through rt_sigreturn on a frame gockpt
 * built from the task's original state. If gockpt goes away (EOF or an error
 * on the socket) the same exit restores the task by itself.
 *
 * Built with -mgeneral-regs-only: the blob never touches vector registers.
 * No libc, no relocations: every global is reached rip-relative.
 */
#include "protocol.h"

#pragma GCC visibility push(hidden)

#define NR_close 3
#define NR_rt_sigaction 13
#define NR_rt_sigprocmask 14
#define NR_sigreturn 15
#define NR_getitimer 36
#define NR_socket 41
#define NR_connect 42
#define NR_sendto 44
#define NR_recvmsg 47
#define NR_umask 95
#define NR_rt_sigpending 127
#define NR_rt_sigtimedwait 128
#define NR_sigaltstack 131
#define NR_prctl 157
#define NR_arch_prctl 158
#define NR_brk 12
#define NR_membarrier 324
#define NR_get_mempolicy 239
#define NR_timer_gettime 224
#define NR_timer_getoverrun 225
#define NR_vmsplice 278

#define EINTR 4
#define EINVAL 22
#define EMSGSIZE 90
#define EPROTO 71

#define AF_UNIX 1
#define SOCK_SEQPACKET 5
#define SOCK_CLOEXEC 02000000
#define MSG_NOSIGNAL 0x4000
#define MSG_CMSG_CLOEXEC 0x40000000
#define SOL_SOCKET 1
#define SCM_RIGHTS 1

#define PR_GET_PDEATHSIG 2
#define PR_GET_DUMPABLE 3
#define PR_GET_CHILD_SUBREAPER 37
#define PR_GET_TID_ADDRESS 40
#define PR_GET_TIMERSLACK 30
#define PR_GET_SECUREBITS 27
#define PR_GET_THP_DISABLE 42
#define PR_GET_MDWE 66
#define ARCH_GET_CPUID 0x1011
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)

#define SIGKILL 9
#define SIGPIPE 13
#define SIGSTOP 19

#define UIO_MAXIOV 1024

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define sys0(nr) sys6(nr, 0, 0, 0, 0, 0, 0)
#define sys1(nr, a) sys6(nr, (long)(a), 0, 0, 0, 0, 0)
#define sys2(nr, a, b) sys6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(nr, a, b, c) sys6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(nr, a, b, c, d) sys6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

void parasite_sigreturn(u64 uc, u64 trim, u64 trim_len) __attribute__((noreturn));
void parasite_park(u64 park, u64 area, u64 area_len, long sock) __attribute__((noreturn));

struct iovec {
	void *base;
	u64 len;
};

struct msghdr {
	void *name;
	s32 namelen;
	s32 pad0;
	struct iovec *iov;
	u64 iovlen;
	void *control;
	u64 controllen;
	s32 flags;
	s32 pad1;
};

struct cmsghdr {
	u64 len;
	s32 level;
	s32 type;
};

struct kernel_sigaction {
	u64 handler;
	u64 flags;
	u64 restorer;
	u64 mask;
};

struct timeval {
	s64 sec, usec;
};

struct itimerval {
	struct timeval interval, value;
};

struct timespec {
	s64 sec, nsec;
};

struct itimerspec {
	struct timespec interval, value;
};

struct stack {
	u64 sp;
	s32 flags;
	s32 pad;
	u64 size;
};

/* Filled in by gockpt before the blob starts. */
struct gk_args parasite_args __attribute__((section(".data"))) = { .magic = 0 };

static u8 rx[GK_MAX_MSG] __attribute__((aligned(16)));
static u8 tx[GK_MAX_MSG] __attribute__((aligned(16)));
static u64 cmsgbuf[8];

/* Was SIGPIPE already pending when we started? If not, any SIGPIPE pending
 * at the end was raised by us (a vmsplice into a pipe gockpt closed) and
 * must not reach the task. */
static int sigpipe_was_pending;

/* gk_args.park: GK_CMD_PARK is refused without parking code. */
static u64 park_addr;

static void *zero(void *p, u64 n)
{
	volatile u8 *b = p;

	while (n--)
		*b++ = 0;
	return p;
}

static int sigpipe_pending(void)
{
	u64 set = 0;

	if (sys2(NR_rt_sigpending, &set, 8) < 0)
		return 0;
	return (set >> (SIGPIPE - 1)) & 1;
}

/* Drop a SIGPIPE the blob raised: the task does not get it. */
static void drop_sigpipe(void)
{
	if (!sigpipe_was_pending && sigpipe_pending()) {
		u64 set = 1ul << (SIGPIPE - 1);
		struct timespec now = { 0, 0 };

		sys4(NR_rt_sigtimedwait, &set, 0, &now, 8);
	}
}

static void __attribute__((noreturn)) cure(struct gk_args *a, long sock)
{
	a->status = GK_STATUS_CURING;
	if (sock >= 0)
		sys1(NR_close, sock);
	drop_sigpipe();
	parasite_sigreturn(a->sigframe, a->trim, a->trim_len);
}

/*
 * Another thread of the task, sent here by gockpt with rsp in a stack of
 * its own (parasite_thread_entry): it fills its slot, counts itself in and
 * goes to the parking code's pause loop, where gockpt stops it again.
 */
void __attribute__((used)) parasite_thread(struct gk_thread_slot *s, u32 *count)
{
	struct stack ss;
	long r;

	s->err = 0;
	r = sys2(NR_prctl, PR_GET_TID_ADDRESS, &s->tid_address);
	if (r < 0)
		s->err = r;
	r = sys2(NR_sigaltstack, 0, &ss);
	if (r < 0 && !s->err)
		s->err = r;
	s->altstack_sp = ss.sp;
	s->altstack_flags = ss.flags;
	s->altstack_size = ss.size;
	s->timerslack = sys1(NR_prctl, PR_GET_TIMERSLACK);
	s->securebits = sys1(NR_prctl, PR_GET_SECUREBITS);
	s->cpuid = sys1(NR_arch_prctl, ARCH_GET_CPUID);
	{
		int mode = 0;

		r = sys6(NR_get_mempolicy, (long)&mode, 0, 0, 0, 0, 0);
		s->mempolicy = r < 0 ? r : mode;
	}
	__atomic_add_fetch(count, 1, __ATOMIC_SEQ_CST);
}

/*
 * GK_CMD_PARK: gockpt is alive and puts the registers back itself. The
 * parking code's way out unmaps the area, then closes the socket: the EOF
 * gockpt reads says both are done.
 */
static void __attribute__((noreturn)) park(struct gk_args *a, long sock)
{
	a->status = GK_STATUS_PARKING;
	drop_sigpipe();
	parasite_park(a->park, a->area, a->area_len, sock);
}

static s32 dump_sigactions(u8 *out, u32 *len)
{
	struct gk_sigaction *sa = (struct gk_sigaction *)out;
	int sig;

	zero(out, 64 * sizeof(*sa));
	for (sig = 1; sig <= 64; sig++) {
		struct kernel_sigaction k;
		long r;

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		r = sys4(NR_rt_sigaction, sig, 0, &k, 8);
		if (r < 0)
			return -r;
		sa[sig - 1].handler = k.handler;
		sa[sig - 1].flags = k.flags;
		sa[sig - 1].restorer = k.restorer;
		sa[sig - 1].mask = k.mask;
	}
	*len = 64 * sizeof(*sa);
	return 0;
}

static s32 dump_itimers(u8 *out, u32 *len)
{
	struct gk_itimerval *it = (struct gk_itimerval *)out;
	int which;

	for (which = 0; which < 3; which++) {
		struct itimerval v;
		long r = sys2(NR_getitimer, which, &v);

		if (r < 0)
			return -r;
		it[which].interval_sec = v.interval.sec;
		it[which].interval_usec = v.interval.usec;
		it[which].value_sec = v.value.sec;
		it[which].value_usec = v.value.usec;
	}
	*len = 3 * sizeof(*it);
	return 0;
}

static s32 dump_posix_timers(const u8 *in, u32 inlen, u8 *out, u32 *len)
{
	const struct gk_count *c = (const struct gk_count *)in;
	const s32 *ids = (const s32 *)(in + sizeof(*c));
	struct gk_posix_timer *t = (struct gk_posix_timer *)out;
	u32 i;

	if (inlen < sizeof(*c) || (inlen - sizeof(*c)) / sizeof(s32) < c->n ||
	    c->n > (GK_MAX_MSG - sizeof(struct gk_hdr)) / sizeof(*t))
		return EINVAL;
	for (i = 0; i < c->n; i++) {
		struct itimerspec v;
		long r = sys2(NR_timer_gettime, ids[i], &v);

		if (r < 0)
			return -r;
		r = sys1(NR_timer_getoverrun, ids[i]);
		if (r < 0)
			return -r;
		t[i].id = ids[i];
		t[i].overrun = r;
		t[i].interval_sec = v.interval.sec;
		t[i].interval_nsec = v.interval.nsec;
		t[i].value_sec = v.value.sec;
		t[i].value_nsec = v.value.nsec;
	}
	*len = c->n * sizeof(*t);
	return 0;
}

static s32 dump_misc(u8 *out, u32 *len)
{
	struct gk_misc *m = (struct gk_misc *)out;
	struct stack ss;
	long r, old;

	zero(m, sizeof(*m));
	r = sys2(NR_prctl, PR_GET_PDEATHSIG, &m->pdeathsig);
	if (r < 0)
		return -r;
	r = sys1(NR_prctl, PR_GET_DUMPABLE);
	if (r < 0)
		return -r;
	m->dumpable = r;
	r = sys2(NR_prctl, PR_GET_CHILD_SUBREAPER, &m->child_subreaper);
	if (r < 0)
		return -r;
	r = sys2(NR_prctl, PR_GET_TID_ADDRESS, &m->tid_address);
	if (r < 0)
		return -r;
	r = sys2(NR_sigaltstack, 0, &ss);
	if (r < 0)
		return -r;
	m->altstack_sp = ss.sp;
	m->altstack_flags = ss.flags;
	m->altstack_size = ss.size;
	/* umask has no getter before /proc/PID/status: set and put back. */
	old = sys1(NR_umask, 022);
	sys1(NR_umask, old);
	m->umask = old;
	m->timerslack = sys1(NR_prctl, PR_GET_TIMERSLACK);
	m->securebits = sys1(NR_prctl, PR_GET_SECUREBITS);
	m->mdwe = sys1(NR_prctl, PR_GET_MDWE);
	m->thp_disable = sys1(NR_prctl, PR_GET_THP_DISABLE);
	m->brk = sys1(NR_brk, 0);
	m->cpuid = sys1(NR_arch_prctl, ARCH_GET_CPUID);
	m->membarrier = sys3(NR_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0);
	*len = sizeof(*m);
	return 0;
}

static s32 dump_pages(const u8 *in, u32 inlen, long pipefd, u8 *out, u32 *len)
{
	const struct gk_count *c = (const struct gk_count *)in;
	struct gk_pages_reply *rep = (struct gk_pages_reply *)out;
	struct iovec *iov = (struct iovec *)(in + sizeof(*c));
	u64 n, i = 0;
	s32 err = 0;

	rep->bytes = 0;
	*len = sizeof(*rep);
	if (pipefd < 0)
		return EINVAL;
	if (inlen < sizeof(*c) || (inlen - sizeof(*c)) / sizeof(*iov) < c->n)
		return EINVAL;
	n = c->n;
	while (i < n) {
		u64 batch = n - i;
		long r;

		if (batch > UIO_MAXIOV)
			batch = UIO_MAXIOV;
		r = sys4(NR_vmsplice, pipefd, &iov[i], batch, 0);
		if (r == -EINTR)
			continue;
		if (r < 0) {
			err = -r;
			break;
		}
		if (r == 0) {
			err = EPROTO;
			break;
		}
		rep->bytes += r;
		/* Skip what went in; a partial iovec is trimmed in place. */
		while (r > 0 && i < n) {
			if ((u64)r >= iov[i].len) {
				r -= iov[i].len;
				i++;
			} else {
				iov[i].base = (u8 *)iov[i].base + r;
				iov[i].len -= r;
				r = 0;
			}
		}
	}
	return err;
}

/* One request in rx (n bytes, fd passed or -1) -> reply in tx. */
static u32 serve(long n, long fd, int *fini)
{
	struct gk_hdr *req = (struct gk_hdr *)rx;
	struct gk_hdr *rep = (struct gk_hdr *)tx;
	u8 *in = rx + sizeof(*req), *out = tx + sizeof(*rep);
	u32 outlen = 0;
	s32 err;

	rep->magic = GK_MAGIC;
	rep->version = GK_VERSION;
	rep->cmd = n >= (long)sizeof(*req) ? req->cmd : 0;
	if (n < (long)sizeof(*req) || req->magic != GK_MAGIC || req->version != GK_VERSION ||
	    req->len != n - sizeof(*req)) {
		err = EPROTO;
		goto done;
	}
	switch (req->cmd) {
	case GK_CMD_SIGACTIONS:
		err = dump_sigactions(out, &outlen);
		break;
	case GK_CMD_ITIMERS:
		err = dump_itimers(out, &outlen);
		break;
	case GK_CMD_POSIX_TIMERS:
		err = dump_posix_timers(in, req->len, out, &outlen);
		break;
	case GK_CMD_MISC:
		err = dump_misc(out, &outlen);
		break;
	case GK_CMD_PAGES:
		err = dump_pages(in, req->len, fd, out, &outlen);
		break;
	case GK_CMD_FINI:
		*fini = 1;
		err = 0;
		break;
	case GK_CMD_TASK: {
		u32 n;

		err = dump_sigactions(out, &outlen);
		if (!err)
			err = dump_itimers(out + outlen, &n);
		if (!err) {
			outlen += n;
			err = dump_misc(out + outlen, &n);
		}
		if (!err)
			outlen += n;
		else
			outlen = 0;
		break;
	}
	case GK_CMD_PARK:
		if (!park_addr) {
			err = EINVAL;
			break;
		}
		*fini = 2;
		err = 0;
		break;
	default:
		err = EINVAL;
	}
done:
	if (fd >= 0)
		sys1(NR_close, fd);
	rep->err = err;
	rep->len = outlen;
	return sizeof(*rep) + outlen;
}

void __attribute__((noreturn, used)) parasite_main(struct gk_args *a)
{
	long sock, r;
	int fini = 0;

	/* First thing: the memfd the code came from, so the task keeps no
	 * fd of gockpt's once the blob has run at all. */
	if (a->memfd >= 0) {
		sys1(NR_close, a->memfd);
		a->memfd = -1;
	}
	a->status = GK_STATUS_STARTED;
	/*
	 * The leader's sigaltstack goes into the frame's uc_stack (16 bytes
	 * into the ucontext), for the way out through rt_sigreturn. The
	 * blob runs on its own stack, so the flags never say SS_ONSTACK:
	 * rt_sigreturn takes 0 and SS_ONSTACK alike.
	 */
	sys2(NR_sigaltstack, 0, a->sigframe + 16);
	sigpipe_was_pending = sigpipe_pending();
	park_addr = a->park;
	sock = sys3(NR_socket, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		a->status = sock;
		cure(a, -1);
	}
	a->sock = sock;
	do
		r = sys3(NR_connect, sock, a->addr, a->addr_len);
	while (r == -EINTR);
	if (r < 0) {
		a->status = r;
		cure(a, sock);
	}
	a->status = GK_STATUS_CONNECTED;

	while (!fini) {
		struct iovec iov = { rx, sizeof(rx) };
		struct msghdr mh;
		struct cmsghdr *cm = (struct cmsghdr *)cmsgbuf;
		long fd = -1;
		u32 len;

		zero(&mh, sizeof(mh));
		mh.iov = &iov;
		mh.iovlen = 1;
		mh.control = cmsgbuf;
		mh.controllen = sizeof(cmsgbuf);
		r = sys3(NR_recvmsg, sock, &mh, MSG_CMSG_CLOEXEC);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break; /* gockpt is gone */
		if (mh.controllen >= sizeof(*cm) + sizeof(s32) && cm->level == SOL_SOCKET &&
		    cm->type == SCM_RIGHTS) {
			s32 *fds = (s32 *)(cm + 1);
			u64 nfds = (cm->len - sizeof(*cm)) / sizeof(s32), k;

			fd = fds[0];
			for (k = 1; k < nfds; k++)
				sys1(NR_close, fds[k]);
		}
		len = serve(r, fd, &fini);
		if (fini == 2)
			park(a, sock);
		do
			r = sys6(NR_sendto, sock, (long)tx, len, MSG_NOSIGNAL, 0, 0);
		while (r == -EINTR);
		if (r < 0)
			break;
	}
	cure(a, sock);
}

/* The Go side (protocol.go) hard-codes these. */
_Static_assert(sizeof(struct gk_hdr) == 16, "gk_hdr");
_Static_assert(sizeof(struct gk_sigaction) == 32, "gk_sigaction");
_Static_assert(sizeof(struct gk_itimerval) == 32, "gk_itimerval");
_Static_assert(sizeof(struct gk_posix_timer) == 40, "gk_posix_timer");
_Static_assert(sizeof(struct gk_misc) == 104, "gk_misc");
_Static_assert(sizeof(struct gk_thread_slot) == 72, "gk_thread_slot");
_Static_assert(sizeof(struct gk_args) == 192, "gk_args");
_Static_assert(__builtin_offsetof(struct gk_args, memfd) == 184, "gk_args.memfd");
_Static_assert(__builtin_offsetof(struct gk_args, status) == 136, "gk_args.status");
_Static_assert(__builtin_offsetof(struct gk_args, sock) == 20, "gk_args.sock");
