// zdtm: desc: after restore (in lazy-faults before any of it is in place), threads read one area page by page while the main thread forks children that read it too, moves another area back and forth with mremap and drops a third with MADV_DONTNEED: faults that meet fork, remap and remove events of the same mm; every read checked
// zdtm: modes: restore snapshot twice predump make-lazy criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096
#define NR 1024 /* pages of r: read by the threads and the children */
#define NM 64   /* pages of m: moved back and forth */
#define ND 64   /* pages of dn: dropped page by page */
#define NTHREADS 3
#define NCHILDREN 16

static unsigned char *r, *m, *dn;
static unsigned char want_r[NR * PG];

static void *reader(void *arg)
{
	long n = (long)arg;

	for (long i = 0; i < NR; i++) {
		/* Threads walk r from different places and directions. */
		long p = n % 2 ? (n * NR / NTHREADS + i) % NR : (NR - 1 - (i + n * NR / NTHREADS) % NR);

		if (memcmp(r + p * PG, want_r + p * PG, PG))
			return (void *)(p + 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[NTHREADS];
	pid_t kids[NCHILDREN];
	unsigned char *hole, *at[2];
	unsigned char want_m[NM * PG];

	zt_init(argc, argv);
	r = mmap(NULL, NR * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m = mmap(NULL, NM * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	dn = mmap(NULL, ND * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	hole = mmap(NULL, 2 * NM * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED || m == MAP_FAILED || dn == MAP_FAILED || hole == MAP_FAILED)
		return 1;
	zt_pattern_fill(r, NR * PG, 101);
	zt_pattern_fill(m, NM * PG, 102);
	zt_pattern_fill(dn, ND * PG, 103);
	memcpy(want_r, r, sizeof(want_r));
	memcpy(want_m, m, sizeof(want_m));
	zt_ready();
	zt_wait_term();

	for (long i = 0; i < NTHREADS; i++)
		if ((errno = pthread_create(&th[i], NULL, reader, (void *)i))) {
			zt_fail("pthread_create: %s", strerror(errno));
			th[i] = 0;
		}

	/* m moves between its place and the hole, a page read after each
	 * move; dn is dropped a page at a time; children fork meanwhile. */
	at[0] = m;
	at[1] = hole;
	for (int i = 0; i < NCHILDREN; i++) {
		unsigned char *from = at[i % 2], *to = at[(i + 1) % 2];
		int pg = (i * 7) % NM;

		if ((kids[i] = fork()) == 0) {
			for (long p = (i * NR / NCHILDREN) % NR, n = 0; n < NR / 4; n++, p = (p + 1) % NR)
				if (memcmp(r + p * PG, want_r + p * PG, PG))
					_exit(1);
			_exit(0);
		}
		if (kids[i] < 0)
			zt_fail("fork: %s", strerror(errno));
		if (mremap(from, NM * PG, NM * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to) {
			zt_fail("mremap %d: %s", i, strerror(errno));
			break;
		}
		if (memcmp(to + pg * PG, want_m + pg * PG, PG))
			zt_fail("m after move %d: page %d differs", i, pg);
		if (madvise(dn + (i % ND) * PG, PG, MADV_DONTNEED))
			zt_fail("madvise: %s", strerror(errno));
	}
	for (int i = 0; i < NCHILDREN; i++) {
		int st;

		if (kids[i] > 0 && (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st)))
			zt_fail("child %d reading r: status 0x%x", i, st);
	}
	for (int i = 0; i < NTHREADS; i++) {
		void *ret;

		if (th[i] && !pthread_join(th[i], &ret) && ret)
			zt_fail("thread %d: page %ld of r differs", i, (long)ret - 1);
	}
	/* NCHILDREN moves: m is back home when NCHILDREN is even. */
	zt_pattern_expect("m after its moves", at[NCHILDREN % 2], NM * PG, 102);
	/* dn: the pages dropped read zero, the others their data. */
	zt_pattern_fill(want_r, ND * PG, 103);
	for (int p = 0; p < ND; p++) {
		int bad = 0;

		if (p < NCHILDREN) {
			for (int i = 0; i < PG && !bad; i++)
				bad = dn[p * PG + i] != 0;
		} else
			bad = memcmp(dn + p * PG, want_r + p * PG, PG) != 0;
		if (bad) {
			zt_fail("dn page %d is not %s", p, p < NCHILDREN ? "zero (dropped)" : "its data");
			break;
		}
	}
	return zt_finish();
}
