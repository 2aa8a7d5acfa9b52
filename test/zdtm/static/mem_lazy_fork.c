// zdtm: desc: after restore (in lazy-faults before any of it is in place), children forked then read memory the parent has not touched since (one after the parent wrote some of it, one forking a grandchild), children that exit at once, one that execs, a vfork child reading the parent's memory, and threads started then reading one area all at once; the parent's data after they are gone
// zdtm: modes: restore snapshot twice predump make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096
#define NA 64   /* pages of a: read by a child, then by the parent */
#define NB 64   /* pages of b: half read by the parent before the fork */
#define NC 256  /* pages of c: read by the threads at once */
#define ND 16   /* pages of d: read by a vfork child */
#define NTHREADS 4
#define NQUICK 8

static unsigned char *a, *b, *c, *d;
static unsigned char want_c[NC * PG];

/* Child exit statuses: which check failed. */
enum { OK, BAD_A, BAD_B, BAD_GRANDCHILD, BAD_PIPE, BAD_EXEC, BAD_D };

static int same(const unsigned char *p, size_t len, uint32_t seed)
{
	return zt_pattern_check(p, len, seed) < 0;
}

static void *reader(void *arg)
{
	long n = (long)arg;

	/* Each thread starts at another page, all read every page. */
	for (long i = 0; i < NC; i++) {
		long p = (i + n * NC / NTHREADS) % NC;

		if (memcmp(c + p * PG, want_c + p * PG, PG))
			return (void *)(p + 1);
	}
	return NULL;
}

static pid_t forked(void)
{
	pid_t pid = fork();

	if (pid < 0)
		zt_fail("fork after restore: %s", strerror(errno));
	return pid;
}

static void wait_ok(pid_t pid, const char *what)
{
	int st;

	if (pid <= 0)
		return;
	if (waitpid(pid, &st, 0) != pid) {
		zt_fail("%s: waitpid: %s", what, strerror(errno));
		return;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != OK)
		zt_fail("%s: status 0x%x (exit %d: 1 a, 2 b, 3 grandchild, 4 pipe, 5 exec, 6 d)", what, st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(int argc, char **argv)
{
	pthread_t th[NTHREADS];
	int p[2];
	pid_t pid, quick[NQUICK];

	zt_init(argc, argv);
	a = mmap(NULL, NA * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	b = mmap(NULL, NB * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c = mmap(NULL, NC * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	d = mmap(NULL, ND * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED || c == MAP_FAILED || d == MAP_FAILED)
		return 1;
	zt_pattern_fill(a, NA * PG, 61);
	zt_pattern_fill(b, NB * PG, 62);
	zt_pattern_fill(c, NC * PG, 63);
	zt_pattern_fill(d, ND * PG, 64);
	memcpy(want_c, c, sizeof(want_c));
	zt_ready();
	zt_wait_term();

	/* Children that exit before they touch anything. */
	for (int i = 0; i < NQUICK; i++)
		if ((quick[i] = forked()) == 0)
			_exit(OK);

	/* A child that execs: the memory it had lazy pages in is gone. */
	if ((pid = forked()) == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(BAD_EXEC);
	}
	wait_ok(pid, "child exec'ing /bin/true");

	/* A vfork child reads the parent's memory (the same mm). */
	if ((pid = vfork()) == 0)
		_exit(same(d, ND * PG, 64) ? OK : BAD_D);
	if (pid < 0)
		zt_fail("vfork: %s", strerror(errno));
	wait_ok(pid, "vfork child reading d");

	/* A child forks a grandchild, then both read a (neither has any
	 * of it yet) and the child writes its copy; the parent reads a
	 * only once they are gone. */
	if ((pid = forked()) == 0) {
		pid_t g;
		int st, ok;

		g = fork();
		if (g == 0)
			_exit(same(a, NA * PG, 61) ? OK : BAD_A);
		ok = same(a, NA * PG, 61);
		memset(a, 0x5a, NA * PG);
		if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != OK)
			_exit(BAD_GRANDCHILD);
		_exit(ok ? OK : BAD_A);
	}
	wait_ok(pid, "child reading a after restore");
	zt_pattern_expect("a after the child and grandchild", a, NA * PG, 61);
	zt_pattern_expect("d after the vfork child", d, ND * PG, 64);

	/* The parent reads half of b, forks, writes all of b; the child
	 * looks once the parent has written: it sees b as at the fork. */
	if (!same(b, NB / 2 * PG, 62))
		zt_fail("first half of b before the fork");
	if (pipe(p)) {
		zt_fail("pipe: %s", strerror(errno));
		return zt_finish();
	}
	if ((pid = forked()) == 0) {
		char x;

		close(p[1]);
		if (read(p[0], &x, 1) != 1)
			_exit(BAD_PIPE);
		_exit(same(b, NB * PG, 62) ? OK : BAD_B);
	}
	close(p[0]);
	memset(b, 0xa5, NB * PG);
	if (write(p[1], "x", 1) != 1)
		zt_fail("pipe write: %s", strerror(errno));
	close(p[1]);
	wait_ok(pid, "child reading b after the parent wrote it");
	for (size_t i = 0; i < NB * PG; i++)
		if (b[i] != 0xa5) {
			zt_fail("b at %zu: %#x after the parent wrote 0xa5", i, b[i]);
			break;
		}

	for (int i = 0; i < NQUICK; i++)
		wait_ok(quick[i], "child exiting at once");

	/* Threads started after restore read c all at once. */
	for (long i = 0; i < NTHREADS; i++)
		if ((errno = pthread_create(&th[i], NULL, reader, (void *)i))) {
			zt_fail("pthread_create: %s", strerror(errno));
			th[i] = 0;
		}
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;

		if (th[i] && !pthread_join(th[i], &ret) && ret)
			zt_fail("thread %d: page %ld of c differs", i, (long)ret - 1);
	}
	return zt_finish();
}
