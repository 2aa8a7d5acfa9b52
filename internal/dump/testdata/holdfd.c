/* Holds one object of the kind named by argv[2], writes what a test needs
 * to know about it ("key value" lines) to DIR/info, then DIR/ready, and
 * sleeps. The first fd it opens is 3.
 * Usage: holdfd DIR KIND [ARG]
 * KIND: socket eventfd epoll timerfd timerfd-cancel inotify signalfd deleted [SIZE]
 *   fanotify fanotify-fs fanotify-perm
 *   unix-pair unix-abstract unix-path-conn unix-ext PATH unix-dgram-ext PATH
 *   unix-listen unix-scm unix-creds tcp-listen
 *   tcp-est tcp-pending tcp-synsent PORT mptcp-est tcp6-listen udp netlink memfd-hugetlb memfd-map shared-anon sysv-shm
 *   aio flock posix-lock ofd-lock lease sigio-parent pty pidfd pidfd-thread
 *   deleted-map
 *   deleted-fifo unlinked-linked epoll-closed files-grandchild */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/fanotify.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <errno.h>
#include <unistd.h>

static int port_of(int fd) {
	struct sockaddr_in6 a;
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.sin6_port); /* same offset in sockaddr_in */
}

static int tcp_listener(int family, const char *addr) {
	int fd = socket(family, SOCK_STREAM, 0);
	if (family == AF_INET) {
		struct sockaddr_in a = {.sin_family = AF_INET};
		inet_pton(AF_INET, addr, &a.sin_addr);
		if (bind(fd, (struct sockaddr *)&a, sizeof a)) return -1;
	} else {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6};
		inet_pton(AF_INET6, addr, &a.sin6_addr);
		if (bind(fd, (struct sockaddr *)&a, sizeof a)) return -1;
	}
	if (listen(fd, 8)) return -1;
	return fd;
}

static int locked_file(const char *dir, int flags) {
	char path[4096];
	snprintf(path, sizeof path, "%s/locked", dir);
	int fd = open(path, flags | O_CREAT, 0600);
	if (fd >= 0 && write(fd, "0123456789", 10) != 10) return -1;
	return fd;
}

int main(int argc, char **argv) {
	char path[4096];
	int fd = -1;
	if (argc < 3) return 2;
	const char *k = argv[2];
	snprintf(path, sizeof path, "%s/info", argv[1]);
	FILE *out = NULL; /* DIR/info, opened after the fds it describes */
	if (!strcmp(k, "socket")) fd = socket(AF_UNIX, SOCK_STREAM, 0);
	else if (!strcmp(k, "eventfd")) fd = eventfd(0, 0);
	else if (!strcmp(k, "epoll")) fd = epoll_create1(0);
	else if (!strcmp(k, "timerfd")) fd = timerfd_create(CLOCK_MONOTONIC, 0);
	else if (!strcmp(k, "timerfd-cancel")) {
		/* expired, not read, and set to cancel on a clock change */
		struct itimerspec v = {.it_value = {1, 0}};
		struct pollfd pf;
		fd = timerfd_create(CLOCK_REALTIME, 0);
		if (fd < 0 || timerfd_settime(fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &v, 0)) return 3;
		pf.fd = fd, pf.events = POLLIN;
		if (poll(&pf, 1, 5000) != 1) return 3;
	}
	else if (!strcmp(k, "inotify")) {
		/* one event queued: IN_CREATE of "x" in DIR/w (16 + 16 bytes) */
		char w[4096], x[4200];
		snprintf(w, sizeof w, "%s/w", argv[1]);
		snprintf(x, sizeof x, "%s/x", w);
		fd = inotify_init1(0);
		if (fd < 0 || mkdir(w, 0700) || inotify_add_watch(fd, w, IN_CREATE) != 1) return 3;
		close(open(x, O_CREAT | O_WRONLY, 0600));
	}
	else if (!strcmp(k, "fanotify")) {
		/* one event queued: FAN_CLOSE_WRITE of DIR/f (24 bytes) */
		char f[4200];
		snprintf(f, sizeof f, "%s/f", argv[1]);
		close(open(f, O_CREAT | O_WRONLY, 0600));
		fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
		if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_CLOSE_WRITE, AT_FDCWD, f)) return 3;
		close(open(f, O_WRONLY));
	}
	else if (!strcmp(k, "fanotify-fs")) {
		/* a filesystem mark on DIR's filesystem */
		struct stat st;
		fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
		if (fd < 0 || stat(argv[1], &st) || fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_CLOSE_WRITE, AT_FDCWD, argv[1])) return 3;
		fprintf(out = fopen(path, "w"), "dev %u:%u\n", major(st.st_dev), minor(st.st_dev));
	}
	else if (!strcmp(k, "fanotify-perm")) {
		/* a child waits for its open of DIR/f to be allowed */
		char f[4200];
		int q = 0;
		snprintf(f, sizeof f, "%s/f", argv[1]);
		close(open(f, O_CREAT | O_WRONLY, 0600));
		fd = fanotify_init(FAN_CLASS_CONTENT, O_RDONLY);
		if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, f)) return 3;
		pid_t c = fork();
		if (c == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(open(f, O_RDONLY));
			for (;;) pause();
		}
		for (int i = 0; i < 5000 && q == 0; i++) {
			if (ioctl(fd, FIONREAD, &q)) return 3;
			usleep(1000);
		}
		if (q == 0) return 3;
		fprintf(out = fopen(path, "w"), "child %d\n", c);
	}
	else if (!strcmp(k, "signalfd")) {
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGUSR1);
		fd = signalfd(-1, &m, 0);
	} else if (!strcmp(k, "deleted")) {
		/* a deleted file of argv[3] bytes */
		long n = argc > 3 ? atol(argv[3]) : 4096;
		snprintf(path, sizeof path, "%s/gone", argv[1]);
		fd = open(path, O_RDWR | O_CREAT, 0600);
		for (long i = 0; i < n; i++) { char c = 'a' + i % 26; if (write(fd, &c, 1) != 1) return 4; }
		lseek(fd, 7, SEEK_SET);
		unlink(path);
	} else if (!strcmp(k, "unix-pair")) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) return 3;
		fd = sv[0];
	} else if (!strcmp(k, "unix-abstract")) {
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "gockpt-test-%d", getpid());
		fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
		if (bind(fd, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + n) || listen(fd, 4)) return 3;
	} else if (!strcmp(k, "unix-path-conn")) {
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof a.sun_path, "%s/sock", argv[1]);
		int l = socket(AF_UNIX, SOCK_STREAM, 0);             /* fd 3 */
		if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4)) return 3;
		int c = socket(AF_UNIX, SOCK_STREAM, 0);             /* fd 4 */
		if (connect(c, (struct sockaddr *)&a, sizeof a)) return 3;
		int s = accept(l, 0, 0);                              /* fd 5 */
		if (s < 0) return 3;
		close(l);                                             /* 3 free */
		fd = c;
	} else if (!strcmp(k, "unix-ext")) {
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[3]);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof a)) return 3;
	} else if (!strcmp(k, "unix-dgram-ext")) {
		/* a dgram socket connected to argv[3], outside the tree */
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[3]);
		fd = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof a)) return 3;
	} else if (!strcmp(k, "unix-listen")) {
		/* a stream listener at DIR/listen, for clients outside */
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof a.sun_path, "%s/listen", argv[1]);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4)) return 3;
	} else if (!strcmp(k, "unix-scm") || !strcmp(k, "unix-creds")) {
		/* a dgram socketpair (3, 4); 4 sent 3 a message with an fd in
		 * flight, or with SO_PASSCRED on 3, one with credentials */
		int sv[2], one = 1;
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) return 3;
		char buf[CMSG_SPACE(sizeof(int))] = {0};
		struct iovec iov = {.iov_base = "m", .iov_len = 1};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
		if (!strcmp(k, "unix-scm")) {
			m.msg_control = buf;
			m.msg_controllen = sizeof buf;
			struct cmsghdr *c = CMSG_FIRSTHDR(&m);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &sv[1], sizeof(int));
		} else if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one)) {
			return 3;
		}
		if (sendmsg(sv[1], &m, 0) != 1) return 3;
		fd = sv[0];
	} else if (!strcmp(k, "tcp-listen")) {
		fd = tcp_listener(AF_INET, "127.0.0.1");
		if (fd >= 0) fprintf(out = fopen(path, "w"), "port %d\n", port_of(fd));
	} else if (!strcmp(k, "tcp6-listen")) {
		fd = tcp_listener(AF_INET6, "::1");
		if (fd >= 0) fprintf(out = fopen(path, "w"), "port %d\n", port_of(fd));
	} else if (!strcmp(k, "tcp-est")) {
		int l = tcp_listener(AF_INET, "127.0.0.1");           /* fd 3 */
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_of(l))};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		int c = socket(AF_INET, SOCK_STREAM, 0);              /* fd 4 */
		if (connect(c, (struct sockaddr *)&a, sizeof a)) return 3;
		int s = accept(l, 0, 0);                              /* fd 5 */
		if (s < 0) return 3;
		close(l);
		fd = c;
		fprintf(out = fopen(path, "w"), "port %d\nlocal %d\n", ntohs(a.sin_port), port_of(c));
	} else if (!strcmp(k, "mptcp-est")) {
		int l = socket(AF_INET, SOCK_STREAM, 262);           /* fd 3, IPPROTO_MPTCP */
		struct sockaddr_in a = {.sin_family = AF_INET};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) return 3;
		a.sin_port = htons(port_of(l));
		int c = socket(AF_INET, SOCK_STREAM, 262);            /* fd 4 */
		if (connect(c, (struct sockaddr *)&a, sizeof a)) return 3;
		int s = accept(l, 0, 0);                               /* fd 5 */
		if (s < 0) return 3;
		close(l);
		fd = c;
		fprintf(out = fopen(path, "w"), "port %d\nlocal %d\n", ntohs(a.sin_port), port_of(c));
	} else if (!strcmp(k, "tcp-pending")) {
		int l = tcp_listener(AF_INET, "127.0.0.1");           /* fd 3 */
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port_of(l))};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		int c = socket(AF_INET, SOCK_STREAM, 0);              /* fd 4, never accepted */
		if (connect(c, (struct sockaddr *)&a, sizeof a)) return 3;
		fd = l;
		fprintf(out = fopen(path, "w"), "port %d\nlocal %d\n", ntohs(a.sin_port), port_of(c));
	} else if (!strcmp(k, "tcp-synsent")) {
		/* argv[3]: a port whose listener drops new connections */
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0); /* fd 3 */
		if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno != EINPROGRESS) return 3;
		fprintf(out = fopen(path, "w"), "local %d\n", port_of(fd));
	} else if (!strcmp(k, "udp")) {
		fd = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET};
		inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
		if (bind(fd, (struct sockaddr *)&a, sizeof a)) return 3;
		fprintf(out = fopen(path, "w"), "port %d\n", port_of(fd));
	} else if (!strcmp(k, "netlink")) {
		/* a route socket with the kernel's answer to a link dump
		 * queued, unread */
		struct { struct nlmsghdr h; struct rtgenmsg g; } req = {
			.h = {.nlmsg_len = sizeof req, .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1},
			.g = {.rtgen_family = AF_UNSPEC},
		};
		fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
		if (send(fd, &req, sizeof req, 0) != sizeof req) return 3;
		uint32_t mi[SK_MEMINFO_VARS] = {0};
		for (int i = 0; i < 10000 && !mi[SK_MEMINFO_RMEM_ALLOC]; i++) {
			socklen_t l = sizeof mi;
			if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &l)) return 3;
			if (!mi[SK_MEMINFO_RMEM_ALLOC]) usleep(1000);
		}
		fprintf(out = fopen(path, "w"), "queued %u\n", mi[SK_MEMINFO_RMEM_ALLOC]);
	} else if (!strcmp(k, "memfd-hugetlb")) {
		fd = memfd_create("huge", MFD_HUGETLB);
	} else if (!strcmp(k, "memfd-map")) {
		fd = memfd_create("cache", 0);
		if (ftruncate(fd, 4096)) return 3;
		void *p = mmap(0, 4096, PROT_READ, MAP_SHARED, fd, 0);
		fprintf(out = fopen(path, "w"), "addr %lx\n", (unsigned long)p);
	} else if (!strcmp(k, "shared-anon")) {
		void *p = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		fprintf(out = fopen(path, "w"), "addr %lx\n", (unsigned long)p);
		fd = 0;
	} else if (!strcmp(k, "sysv-shm")) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
		void *p = shmat(id, 0, 0);
		shmctl(id, IPC_RMID, 0);
		fprintf(out = fopen(path, "w"), "addr %lx\nshmid %d\n", (unsigned long)p, id);
		fd = 0;
	} else if (!strcmp(k, "aio")) {
		aio_context_t ctx = 0;
		if (syscall(SYS_io_setup, 8, &ctx)) return 3;
		fprintf(out = fopen(path, "w"), "addr %lx\n", (unsigned long)ctx);
		fd = 0;
	} else if (!strcmp(k, "flock")) {
		fd = locked_file(argv[1], O_RDWR);
		if (flock(fd, LOCK_EX)) return 3;
	} else if (!strcmp(k, "posix-lock")) {
		fd = locked_file(argv[1], O_RDWR);
		struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 4};
		if (fcntl(fd, F_SETLK, &l)) return 3;
	} else if (!strcmp(k, "ofd-lock")) {
		fd = locked_file(argv[1], O_RDWR);
		struct flock l = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
		if (fcntl(fd, F_OFD_SETLK, &l)) return 3;
	} else if (!strcmp(k, "lease")) {
		fd = locked_file(argv[1], O_RDWR);
		close(fd);
		snprintf(path, sizeof path, "%s/locked", argv[1]);
		fd = open(path, O_RDONLY);
		if (fcntl(fd, F_SETLEASE, F_RDLCK)) return 3;
	} else if (!strcmp(k, "sigio-parent")) {
		int p[2];
		if (pipe(p)) return 3;
		if (fcntl(p[0], F_SETOWN, getppid())) return 3;
		fd = p[0];
		fprintf(out = fopen(path, "w"), "owner %d\n", getppid());
	} else if (!strcmp(k, "deleted-map")) {
		char f[4096];
		snprintf(f, sizeof f, "%s/mapped", argv[1]);
		int m = open(f, O_RDWR | O_CREAT, 0600);
		if (m < 0 || write(m, "data", 4) != 4) return 3;
		void *p = mmap(0, 4096, PROT_READ, MAP_PRIVATE, m, 0);
		close(m);
		unlink(f);
		fprintf(out = fopen(path, "w"), "addr %lx\n", (unsigned long)p);
		fd = 0;
	} else if (!strcmp(k, "epoll-closed")) {
		/* fd 3 watches a pipe added as fd 4, which only a child holds now. */
		int p[2];
		struct epoll_event ev = {.events = EPOLLIN};
		fd = epoll_create1(0);
		if (fd != 3 || pipe(p) || p[0] != 4 || epoll_ctl(fd, EPOLL_CTL_ADD, p[0], &ev)) return 3;
		pid_t c = fork();
		if (c == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;) pause();
		}
		close(p[0]);
		fprintf(out = fopen(path, "w"), "child %d\n", c);
	} else if (!strcmp(k, "files-grandchild")) {
		/* A child and its child share our fd table; then the child leaves it. */
		int p[2];
		pid_t a, b;
		if (pipe(p)) return 3;
		a = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
		if (a == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			b = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
			if (b == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				for (;;) pause();
			}
			if (unshare(CLONE_FILES) || write(p[1], &b, sizeof b) != sizeof b) _exit(3);
			for (;;) pause();
		}
		if (read(p[0], &b, sizeof b) != sizeof b) return 3;
		fprintf(out = fopen(path, "w"), "child %d\ngrandchild %d\n", a, b);
		fd = 0;
	} else if (!strcmp(k, "console")) {
		fd = open("/dev/console", O_RDWR | O_NOCTTY);
	} else if (!strcmp(k, "pty")) {
		/* a pty pair (3, 4) with 5 bytes the slave wrote, unread */
		int n;
		fd = posix_openpt(O_RDWR | O_NOCTTY);
		if (fd < 0 || grantpt(fd) || unlockpt(fd) || ioctl(fd, TIOCGPTN, &n)) return 3;
		int s = open(ptsname(fd), O_RDWR | O_NOCTTY);
		struct termios t;
		if (s < 0 || tcgetattr(s, &t)) return 3;
		t.c_oflag &= ~OPOST;
		if (tcsetattr(s, TCSANOW, &t) || write(s, "hello", 5) != 5) return 3;
		fprintf(out = fopen(path, "w"), "index %d\n", n);
	} else if (!strcmp(k, "deleted-fifo")) {
		/* a deleted FIFO open read-write, 3 bytes in it */
		snprintf(path, sizeof path, "%s/fifo", argv[1]);
		if (mkfifo(path, 0600)) return 3;
		fd = open(path, O_RDWR);
		if (fd < 0 || write(fd, "abc", 3) != 3) return 3;
		unlink(path);
	} else if (!strcmp(k, "unlinked-linked")) {
		/* a file unlinked while another hard link (b) names it */
		char b[4096];
		snprintf(path, sizeof path, "%s/a", argv[1]);
		snprintf(b, sizeof b, "%s/b", argv[1]);
		fd = open(path, O_RDWR | O_CREAT, 0600);
		if (fd < 0 || write(fd, "abc", 3) != 3 || link(path, b)) return 3;
		unlink(path);
	} else if (!strcmp(k, "pidfd")) {
		fd = syscall(SYS_pidfd_open, getppid(), 0);
	} else if (!strcmp(k, "pidfd-thread")) {
		fd = syscall(SYS_pidfd_open, getppid(), O_EXCL); /* PIDFD_THREAD */
	}
	if (fd < 0) return 3;
	if (out) fclose(out);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	for (;;) pause();
}
