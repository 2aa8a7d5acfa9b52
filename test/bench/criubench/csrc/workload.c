// Workloads for criubench: one program, one mode per workload family.
//
//   workload MODE N READYFILE STATEFILE
//
//   mem N      N MiB of touched private anonymous memory, a pattern per page
//   tree N     N tasks: the root forks N-1 children; every task touches 1 MiB
//   threads N  N threads in one process (the main thread included)
//   fds N      N more open fds on /dev/null (RLIMIT_NOFILE soft raised to hard)
//   vmas N     N one-page anonymous mappings, alternately read-write and
//              read-only, so that no two merge; each touched (and a PROT_NONE
//              page at each end of the run)
//   touch N    as mem, and on each SIGUSR2 the task reads one byte of every
//              page once, in a random order, timing each read (the post-copy
//              bench: first touches after a lazy restore); see touch_pass
//
// When set up, the root writes its PID to READYFILE (written aside, then
// renamed). On each SIGUSR1 every task recomputes what it holds from its own
// state and appends one line per task to STATEFILE:
//
//   IDX ROUND SUM OK
//
// IDX names the task (0 for the root, 1..N-1 for the tree's children), ROUND
// counts the SIGUSR1 rounds the task served (it lives in the task's memory, so
// it keeps counting across a checkpoint), SUM is a checksum of the task's
// state and OK counts the objects found intact (pages, threads, fds, VMAs).
// The bench compares SUM and OK before the dump and after the restore.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MIX 0x9E3779B97F4A7C15ULL

static const char *statefile;
static unsigned long rounds;
static sigset_t usr1;
static volatile unsigned sink;

static void die(const char *what) {
	fprintf(stderr, "workload: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void report(long idx, unsigned long long sum, long ok) {
	char buf[128];
	int n = snprintf(buf, sizeof buf, "%ld %lu %016llx %ld\n", idx, rounds, sum, ok);
	int fd = open(statefile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open state file");
	if (write(fd, buf, n) != n)
		die("write state file");
	close(fd);
}

static void ready(const char *path) {
	char tmp[4096], buf[32];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open ready file");
	int n = snprintf(buf, sizeof buf, "%d\n", getpid());
	if (write(fd, buf, n) != n)
		die("write ready file");
	close(fd);
	if (rename(tmp, path))
		die("rename ready file");
}

// wait_usr1 returns once a SIGUSR1 is pending; SIGUSR1 is blocked in every
// thread, so the task sleeps in sigwaitinfo while it is checkpointed.
static void wait_usr1(void) {
	while (sigwaitinfo(&usr1, NULL) < 0)
		if (errno != EINTR)
			die("sigwaitinfo");
	rounds++;
}

static unsigned long long page_word(unsigned long long seed, size_t page, size_t word) {
	return (seed + page + 1) * MIX ^ (word * 0x100000001B3ULL);
}

// fill touches every page of p with words derived from seed and the page index.
static void fill(unsigned char *p, size_t size, unsigned long long seed) {
	for (size_t pg = 0; pg < size / PAGE; pg++) {
		uint64_t *w = (uint64_t *)(p + pg * PAGE);
		for (size_t i = 0; i < PAGE / 8; i++)
			w[i] = page_word(seed, pg, i);
	}
}

// check samples three words of every page; it returns the count of pages
// that still hold their pattern and adds the sampled words into *sum.
static long check(const unsigned char *p, size_t size, unsigned long long seed,
		  unsigned long long *sum) {
	long ok = 0;
	const size_t words[3] = {0, PAGE / 16, PAGE / 8 - 1};
	for (size_t pg = 0; pg < size / PAGE; pg++) {
		const uint64_t *w = (const uint64_t *)(p + pg * PAGE);
		int good = 1;
		for (int k = 0; k < 3; k++) {
			*sum += w[words[k]] * (k + 1);
			if (w[words[k]] != page_word(seed, pg, words[k]))
				good = 0;
		}
		ok += good;
	}
	return ok;
}

static unsigned char *map_anon(size_t size, int prot) {
	void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static _Noreturn void run_mem(long mib, const char *readyfile) {
	size_t size = (size_t)mib << 20;
	unsigned char *p = map_anon(size, PROT_READ | PROT_WRITE);
	fill(p, size, 1);
	ready(readyfile);
	for (;;) {
		wait_usr1();
		unsigned long long sum = 0;
		long ok = check(p, size, 1, &sum);
		report(0, sum, ok);
	}
}

// shuffle returns the i-th of the n page indexes in a fixed random order: a
// bijection on k-bit numbers (2^k >= n; multiply by an odd constant, add, xor
// with the high half) applied until the result is below n (cycle walking),
// so that the order needs no table in memory.
static size_t shuffle(size_t i, size_t n, unsigned k) {
	const uint64_t mask = k >= 64 ? ~0ULL : (1ULL << k) - 1;
	uint64_t x = i;
	do {
		for (int r = 1; r <= 4; r++) {
			x = (x * MIX + 0x632BE59BD9B4E019ULL * r) & mask;
			x ^= x >> (k / 2 + 1);
		}
	} while (x >= n);
	return x;
}

static uint64_t ns_between(const struct timespec *a, const struct timespec *b) {
	return (uint64_t)(b->tv_sec - a->tv_sec) * 1000000000ULL + b->tv_nsec - a->tv_nsec;
}

// touch_pass reads one byte of each page of p once, in shuffle's order, and
// writes STATEFILE.touch (aside, then renamed): when the pass started and
// ended, CLOCK_REALTIME in ns, as two uint64 (not CLOCK_MONOTONIC: CRIU
// restores the task in a time namespace whose monotonic clock goes on from
// the dump, so it cannot be set beside the bench's), then one uint32 per
// read in the order of the reads (timed by CLOCK_MONOTONIC): its
// duration in ns (at most 2^31-1) with the top bit set when the read took a
// page fault (getrusage(RUSAGE_THREAD) after each read, minor and major):
// every page was populated before the dump, so a read faults only when its
// page is not in place yet and the lazy-pages daemon must bring it in; a
// page already in place is mapped and reads without a fault. The record is
// fresh memory mapped and written before the pass: it is not the restored
// tree's, so it is never lazy.
static void touch_pass(const unsigned char *p, size_t size) {
	size_t n = size / PAGE, len = 16 + 4 * n;
	unsigned char *rec = map_anon(len, PROT_READ | PROT_WRITE);
	memset(rec, 0, len);
	uint32_t *lat = (uint32_t *)(rec + 16);
	unsigned k = 0;
	while ((1ULL << k) < n)
		k++;
	struct rusage ru;
	struct timespec a, b, wall_start, wall_end;
	if (getrusage(RUSAGE_THREAD, &ru))
		die("getrusage");
	long flt = ru.ru_majflt + ru.ru_minflt;
	clock_gettime(CLOCK_REALTIME, &wall_start);
	for (size_t i = 0; i < n; i++) {
		const volatile unsigned char *q = p + shuffle(i, n, k) * PAGE;
		clock_gettime(CLOCK_MONOTONIC, &a);
		sink += *q;
		clock_gettime(CLOCK_MONOTONIC, &b);
		getrusage(RUSAGE_THREAD, &ru);
		uint64_t ns = ns_between(&a, &b);
		long now = ru.ru_majflt + ru.ru_minflt;
		lat[i] = (ns > 0x7fffffff ? 0x7fffffff : (uint32_t)ns) | (now != flt ? 0x80000000u : 0);
		flt = now;
	}
	clock_gettime(CLOCK_REALTIME, &wall_end);
	uint64_t when[2] = {
		(uint64_t)wall_start.tv_sec * 1000000000ULL + wall_start.tv_nsec,
		(uint64_t)wall_end.tv_sec * 1000000000ULL + wall_end.tv_nsec,
	};
	memcpy(rec, when, sizeof when);

	char path[4096], tmp[4096];
	snprintf(path, sizeof path, "%s.touch", statefile);
	snprintf(tmp, sizeof tmp, "%s.touch.tmp", statefile);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open touch file");
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, rec + off, len - off);
		if (w < 0 && errno != EINTR)
			die("write touch file");
		if (w > 0)
			off += w;
	}
	close(fd);
	if (rename(tmp, path))
		die("rename touch file");
	munmap(rec, len);
}

static _Noreturn void run_touch(long mib, const char *readyfile) {
	size_t size = (size_t)mib << 20;
	unsigned char *p = map_anon(size, PROT_READ | PROT_WRITE);
	fill(p, size, 1);
	ready(readyfile);
	for (;;) {
		int sig;
		while ((sig = sigwaitinfo(&usr1, NULL)) < 0)
			if (errno != EINTR)
				die("sigwaitinfo");
		if (sig == SIGUSR2) {
			touch_pass(p, size);
			continue;
		}
		rounds++;
		unsigned long long sum = 0;
		long ok = check(p, size, 1, &sum);
		report(0, sum, ok);
	}
}

// Tree: the root forks n-1 children, each holding 1 MiB of its own. The
// children tell the root they are set up through a pipe that every task
// closes before the root reports ready, so no pipe is left to checkpoint.
static _Noreturn void run_tree(long n, const char *readyfile) {
	const size_t size = 1 << 20;
	pid_t *kids = calloc(n, sizeof *kids);
	int pfd[2];
	if (!kids)
		die("calloc");
	if (pipe2(pfd, O_CLOEXEC))
		die("pipe");
	for (long i = 1; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			close(pfd[0]);
			unsigned char *p = map_anon(size, PROT_READ | PROT_WRITE);
			fill(p, size, i);
			if (write(pfd[1], "r", 1) != 1)
				die("write ready pipe");
			close(pfd[1]);
			for (;;) {
				wait_usr1();
				unsigned long long sum = 0;
				long ok = check(p, size, i, &sum);
				report(i, sum, ok);
			}
		}
		kids[i] = pid;
	}
	close(pfd[1]);
	for (long got = 1; got < n;) {
		char c;
		ssize_t r = read(pfd[0], &c, 1);
		if (r == 1)
			got++;
		else if (r == 0 || errno != EINTR) {
			fprintf(stderr, "workload: %ld of %ld children set up\n", got - 1, n - 1);
			exit(2);
		}
	}
	close(pfd[0]);
	unsigned char *p = map_anon(size, PROT_READ | PROT_WRITE);
	fill(p, size, 0);
	ready(readyfile);
	for (;;) {
		wait_usr1();
		for (long i = 1; i < n; i++)
			if (kill(kids[i], SIGUSR1))
				die("kill child");
		unsigned long long sum = 0;
		long ok = check(p, size, 0, &sum);
		report(0, sum, ok);
	}
}

// Threads: each worker waits on a condition variable; the main thread bumps
// a generation on SIGUSR1, and every worker answers with a value made of its
// thread-local and stack state.
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t poke = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static unsigned long gen, acks;
static unsigned long long total;
static __thread long my_idx;

static void *worker(void *arg) {
	volatile unsigned long long on_stack = (long)arg * MIX;
	unsigned long seen = 0;
	my_idx = (long)arg;
	pthread_mutex_lock(&mu);
	acks++;
	pthread_cond_signal(&done);
	for (;;) {
		while (gen == seen)
			pthread_cond_wait(&poke, &mu);
		seen = gen;
		total += on_stack ^ (unsigned long long)my_idx;
		acks++;
		pthread_cond_signal(&done);
	}
	return NULL;
}

static void wait_acks(unsigned long want) {
	while (acks < want) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		if (pthread_cond_timedwait(&done, &mu, &ts) == ETIMEDOUT)
			break;
	}
}

static _Noreturn void run_threads(long n, const char *readyfile) {
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 << 10);
	for (long i = 1; i < n; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, worker, (void *)i);
		if (err) {
			errno = err;
			die("pthread_create");
		}
	}
	pthread_mutex_lock(&mu);
	wait_acks(n - 1);
	pthread_mutex_unlock(&mu);
	ready(readyfile);
	for (;;) {
		wait_usr1();
		pthread_mutex_lock(&mu);
		gen++;
		acks = 0;
		total = 0;
		pthread_cond_broadcast(&poke);
		wait_acks(n - 1);
		report(0, total, acks);
		pthread_mutex_unlock(&mu);
	}
}

// Fds: n fds on /dev/null, the odd ones close-on-exec, so that the check
// sees the fds, what they point to and their flags.
static _Noreturn void run_fds(long n, const char *readyfile) {
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		die("getrlimit");
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		die("setrlimit");
	int *fds = calloc(n, sizeof *fds);
	if (!fds)
		die("calloc");
	for (long i = 0; i < n; i++) {
		fds[i] = open("/dev/null", O_RDWR | (i % 2 ? O_CLOEXEC : 0));
		if (fds[i] < 0)
			die("open /dev/null");
	}
	ready(readyfile);
	for (;;) {
		wait_usr1();
		unsigned long long sum = 0;
		long ok = 0;
		for (long i = 0; i < n; i++) {
			struct stat st;
			int fl = fcntl(fds[i], F_GETFD);
			if (fl < 0 || fstat(fds[i], &st))
				continue;
			sum += (unsigned long long)fds[i] * MIX ^ (unsigned long long)fl;
			if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) &&
			    !!(fl & FD_CLOEXEC) == (i % 2))
				ok++;
		}
		report(0, sum, ok);
	}
}

// Vmas: n one-page mappings; the odd ones are made read-only after being
// written. The check reads every page and finds each mapping in
// /proc/self/maps as its own line with its own protection.
struct region {
	unsigned long start;
	int ro;
};

static int by_start(const void *a, const void *b) {
	unsigned long x = ((const struct region *)a)->start, y = ((const struct region *)b)->start;
	return x < y ? -1 : x > y;
}

static long maps_intact(struct region *rs, long n) {
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	long ok = 0;
	if (!f)
		die("open /proc/self/maps");
	while (fgets(line, sizeof line, f)) {
		unsigned long s, e;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &s, &e, perms) != 3)
			continue;
		struct region key = {.start = s};
		struct region *r = bsearch(&key, rs, n, sizeof *rs, by_start);
		if (r && e - s == PAGE && perms[0] == 'r' && perms[1] == (r->ro ? '-' : 'w'))
			ok++;
	}
	fclose(f);
	return ok;
}

static _Noreturn void run_vmas(long n, const char *readyfile) {
	struct region *rs = calloc(n, sizeof *rs);
	if (!rs)
		die("calloc");
	// One reservation with a PROT_NONE page at each end, so that the first
	// and last mappings cannot merge with a neighbour outside the workload.
	unsigned char *base = map_anon((n + 2) * PAGE, PROT_NONE);
	for (long i = 0; i < n; i++) {
		unsigned char *p = mmap(base + (i + 1) * PAGE, PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			die("mmap");
		fill(p, PAGE, i);
		rs[i].start = (unsigned long)p;
		rs[i].ro = i % 2;
	}
	for (long i = 0; i < n; i++)
		if (rs[i].ro && mprotect((void *)rs[i].start, PAGE, PROT_READ))
			die("mprotect");
	// The seed of each page is its creation index; keep it before sorting.
	unsigned long *starts = calloc(n, sizeof *starts);
	if (!starts)
		die("calloc");
	for (long i = 0; i < n; i++)
		starts[i] = rs[i].start;
	qsort(rs, n, sizeof *rs, by_start);
	ready(readyfile);
	for (;;) {
		wait_usr1();
		unsigned long long sum = 0;
		long pages = 0;
		for (long i = 0; i < n; i++)
			pages += check((const unsigned char *)starts[i], PAGE, i, &sum);
		long vmas = maps_intact(rs, n);
		report(0, sum, pages < vmas ? pages : vmas);
	}
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: workload mem|tree|threads|fds|vmas|touch N READYFILE STATEFILE\n");
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	statefile = argv[4];
	if (n < 1) {
		fprintf(stderr, "workload: N must be at least 1\n");
		return 2;
	}
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (!strcmp(argv[1], "touch"))
		sigaddset(&usr1, SIGUSR2); // waited for with SIGUSR1
	if (sigprocmask(SIG_BLOCK, &usr1, NULL))
		die("sigprocmask");
	if (!strcmp(argv[1], "mem"))
		run_mem(n, argv[3]);
	if (!strcmp(argv[1], "tree"))
		run_tree(n, argv[3]);
	if (!strcmp(argv[1], "threads"))
		run_threads(n, argv[3]);
	if (!strcmp(argv[1], "fds"))
		run_fds(n, argv[3]);
	if (!strcmp(argv[1], "vmas"))
		run_vmas(n, argv[3]);
	if (!strcmp(argv[1], "touch"))
		run_touch(n, argv[3]);
	fprintf(stderr, "workload: unknown mode %s\n", argv[1]);
	return 2;
}
