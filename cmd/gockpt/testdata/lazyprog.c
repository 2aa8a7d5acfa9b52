/* A tree for post-copy tests. Before the checkpoint: regions A-E (1 MiB
 * each, a pattern per region), a second thread, and a child forked after A
 * was filled (sharing it copy-on-write) that fills region H of its own.
 * After restore, on SIGUSR1: the thread checks A; the main thread forks a
 * new child that checks E, moves B with mremap and checks it, drops C with
 * MADV_DONTNEED (must read zero), unmaps D and maps it again (zero), checks
 * E; the first child checks A and H. Each writes "ok" or what differs to
 * DIR/NAME, then the tree exits. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096
#define NP 256

static const char *dir;
static unsigned char *a, *b, *c, *d, *e, *h;
static pthread_barrier_t go;

static unsigned char *region(void)
{
	unsigned char *p = mmap(NULL, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		exit(2);
	return p;
}

static unsigned char val(int seed, long i) { return (unsigned char)(seed * 31 + (i / PG) * 7 + i % 251); }

static void fill(unsigned char *p, int seed)
{
	for (long i = 0; i < (long)NP * PG; i++)
		p[i] = val(seed, i);
}

/* check returns 0, or 1 + the first page that differs. */
static int check(const unsigned char *p, int seed)
{
	for (long i = 0; i < (long)NP * PG; i++)
		if (p[i] != val(seed, i))
			return 1 + i / PG;
	return 0;
}

static int zero(const unsigned char *p)
{
	for (long i = 0; i < (long)NP * PG; i++)
		if (p[i])
			return 1 + i / PG;
	return 0;
}

static void result(const char *name, const char *fmt, ...)
{
	char path[4096], tmp[4096], msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, msg, strlen(msg)) < 0)
		exit(3);
	close(fd);
	rename(tmp, path);
}

static void wait_usr1(void)
{
	sigset_t s;
	int sig;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigwait(&s, &sig);
}

static void *thread(void *x)
{
	pthread_barrier_wait(&go);
	int r = check(a, 1);
	if (r)
		result("thread", "region A page %d differs", r - 1);
	else
		result("thread", "ok");
	return NULL;
}

int main(int argc, char **argv)
{
	sigset_t s;
	pthread_t t;
	char ready[4096];

	dir = argv[1];
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigprocmask(SIG_BLOCK, &s, NULL);
	a = region(); b = region(); c = region(); d = region(); e = region();
	fill(a, 1); fill(b, 2); fill(c, 3); fill(d, 4); fill(e, 5);
	pid_t first = fork();
	if (first == 0) {
		h = region();
		fill(h, 8);
		snprintf(ready, sizeof(ready), "%s/child-ready", dir);
		close(open(ready, O_WRONLY | O_CREAT, 0600));
		wait_usr1();
		int ra = check(a, 1), rh = check(h, 8);
		if (ra || rh)
			result("first-child", "A page %d, H page %d differ", ra - 1, rh - 1);
		else
			result("first-child", "ok");
		_exit(0);
	}
	pthread_barrier_init(&go, NULL, 2);
	pthread_create(&t, NULL, thread, NULL);
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	close(open(ready, O_WRONLY | O_CREAT, 0600));
	wait_usr1();

	pthread_barrier_wait(&go);
	pid_t child = fork();
	if (child == 0) {
		int r = check(e, 5);
		if (r)
			result("new-child", "region E page %d differs", r - 1);
		else
			result("new-child", "ok");
		_exit(0);
	}
	char err[512] = "";
	unsigned char *to = mmap(NULL, NP * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *nb = mremap(b, NP * PG, NP * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	int r;
	if (nb == MAP_FAILED)
		snprintf(err, sizeof(err), "mremap failed");
	else if ((r = check(nb, 2)))
		snprintf(err, sizeof(err), "moved region B page %d differs", r - 1);
	madvise(c, NP * PG, MADV_DONTNEED);
	if (!err[0] && (r = zero(c)))
		snprintf(err, sizeof(err), "region C page %d is not zero after MADV_DONTNEED", r - 1);
	munmap(d, NP * PG);
	if (mmap(d, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != d)
		snprintf(err, sizeof(err), "mmap D again failed");
	if (!err[0] && (r = zero(d)))
		snprintf(err, sizeof(err), "region D page %d is not zero after munmap and mmap", r - 1);
	if (!err[0] && (r = check(e, 5)))
		snprintf(err, sizeof(err), "region E page %d differs", r - 1);
	pthread_join(t, NULL);
	waitpid(child, NULL, 0);
	waitpid(first, NULL, 0);
	result("main", "%s", err[0] ? err : "ok");
	return 0;
}
