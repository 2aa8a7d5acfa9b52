/*
 * Control protocol between gockpt and the parasite. Every message is one
 * SOCK_SEQPACKET packet: a struct gk_hdr, then hdr.len bytes of payload.
 * All fields are little-endian (the blob only runs on x86-64). The Go side
 * mirrors these layouts in protocol.go; change both and bump GK_VERSION.
 */
#ifndef GOCKPT_PARASITE_PROTOCOL_H
#define GOCKPT_PARASITE_PROTOCOL_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long u64;
typedef long s64;

#define GK_MAGIC 0x54504b47u /* "GKPT" */
#define GK_VERSION 2

#define GK_MAX_MSG 65536

enum {
	GK_CMD_SIGACTIONS = 1,   /* -> 64 x struct gk_sigaction, signal 1 first */
	GK_CMD_ITIMERS = 2,      /* -> 3 x struct gk_itimerval: REAL, VIRTUAL, PROF */
	GK_CMD_POSIX_TIMERS = 3, /* struct gk_count + ids -> n x struct gk_posix_timer */
	GK_CMD_MISC = 4,         /* -> struct gk_misc */
	GK_CMD_PAGES = 5,        /* struct gk_count + iovecs, pipe fd -> struct gk_pages_reply */
	GK_CMD_FINI = 6,         /* -> empty; then the blob cures itself */
	/*
	 * -> no reply: the blob drops a SIGPIPE it raised and jumps to the
	 * parking code's way out (gk_args.park) with munmap(area, area_len)
	 * loaded: the whole area goes, then the socket is closed (gockpt
	 * reads EOF), and the thread sleeps in pause(2) until gockpt stops it
	 * and puts its registers back.
	 */
	GK_CMD_PARK = 7,
	/* -> what SIGACTIONS, ITIMERS and MISC answer, one after another */
	GK_CMD_TASK = 8,
};

struct gk_hdr {
	u32 magic;
	u16 version;
	u16 cmd;
	s32 err; /* replies: errno of the first failure, 0 on success */
	u32 len; /* payload bytes after the header */
};

struct gk_sigaction {
	u64 handler;
	u64 flags;
	u64 restorer;
	u64 mask;
};

struct gk_itimerval {
	s64 interval_sec, interval_usec;
	s64 value_sec, value_usec;
};

struct gk_count {
	u32 n;
	u32 pad;
};

struct gk_posix_timer {
	s32 id;
	s32 overrun;
	s64 interval_sec, interval_nsec;
	s64 value_sec, value_nsec;
};

struct gk_misc {
	s32 pdeathsig;
	s32 dumpable;
	s32 child_subreaper;
	u32 umask;
	u64 tid_address;
	u64 altstack_sp;
	s32 altstack_flags;
	u32 pad;
	u64 altstack_size;
	/*
	 * What the leader's own syscalls answer, raw (a negative errno when
	 * the kernel has no such call): gockpt checks and keeps them.
	 */
	s64 timerslack;  /* prctl(PR_GET_TIMERSLACK) */
	s64 securebits;  /* prctl(PR_GET_SECUREBITS) */
	s64 mdwe;        /* prctl(PR_GET_MDWE) */
	s64 thp_disable; /* prctl(PR_GET_THP_DISABLE) */
	s64 brk;         /* brk(0) */
	s64 cpuid;       /* arch_prctl(ARCH_GET_CPUID) */
	s64 membarrier;  /* membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS) */
};

/*
 * What another thread of the task tells of itself (parasite_thread_entry):
 * gockpt reads the slots once every thread has counted itself in.
 */
struct gk_thread_slot {
	u64 tid_address;
	u64 altstack_sp;
	s32 altstack_flags;
	u32 pad;
	u64 altstack_size;
	s64 timerslack; /* raw answers, as in struct gk_misc */
	s64 securebits;
	s64 cpuid;
	s64 err; /* -errno of PR_GET_TID_ADDRESS or sigaltstack, else 0 */
	s64 mempolicy; /* get_mempolicy's mode for the thread, or -errno */
};

/* A page range: the layout of struct iovec, so vmsplice takes it as is. */
struct gk_range {
	u64 addr;
	u64 len;
};

struct gk_pages_reply {
	u64 bytes; /* bytes spliced into the pipe, also on error */
};

/*
 * The args area: gockpt fills it in before starting the blob, the blob
 * reports its progress in status.
 */
#define GK_ARGS_MAGIC 0x41504b47u /* "GKPA" */

struct gk_args {
	u32 magic;
	u32 version;
	u64 sigframe;  /* rsp for rt_sigreturn: address of the frame's ucontext */
	u32 addr_len;  /* bytes of addr used */
	s32 sock;      /* the blob's socket, once made (gockpt closes it) */
	u8 addr[112];  /* struct sockaddr_un gockpt listens on */
	s64 status;    /* GK_STATUS_* or -errno of the step that failed */
	u64 trim;      /* unmapped on the way out: everything but code and frame */
	u64 trim_len;
	u64 park;      /* the parking code's way out in the vDSO, 0 if none */
	u64 area;      /* the whole parasite area, for GK_CMD_PARK */
	u64 area_len;
	s32 memfd;     /* the memfd the code is mapped from: the blob closes it */
	u32 pad;
};

enum {
	GK_STATUS_STARTED = 1,
	GK_STATUS_CONNECTED = 2,
	GK_STATUS_CURING = 3,
	GK_STATUS_PARKING = 4,
};

#endif
