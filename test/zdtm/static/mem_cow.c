// zdtm: desc: copy-on-write sharing after fork kept: a 64 MiB private anonymous area filled by the parent, two children and the parent each rewrite their own pages after fork; every page nobody rewrote is still the same physical page in parent and children (pagemap PFN), rewritten pages are not, and every task sees its own data
// Not in lazy and lazy-faults: post-copy puts each task's lazy pages in its
// own memory (UFFDIO_COPY per task; restore makes an area with lazy pages
// anew in every task rather than inherit it, as CRIU's lazy restore does),
// so pages shared copy-on-write at the dump come back one copy per task,
// and in lazy-faults they are not present until touched. predump-lazy
// keeps the sharing: the final dump finds the area unchanged, so nothing
// of it is lazy.
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump -lazy -lazy-faults
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096
#define NP (64 * 1024 * 1024 / PG)
#define PARENT_WRITES 3 /* pages i % 64 == 3 the parent rewrites; child c rewrites i % 64 == c */
#define DROPPED 5       /* pages i % 64 == 5 child 1 drops (MADV_DONTNEED): zeros there, its parent's data elsewhere */

static uint32_t seed(int i, int who)
{
	if (who && i % 64 == who)
		return 50000 + who * NP + i;
	if (!who && i % 64 == PARENT_WRITES)
		return 40000 + i;
	return 30000 + i;
}

/* check compares every page with what task who (0: parent, 1-2: child) wrote. */
static int check(unsigned char *m, int who)
{
	int bad = 0;

	static const unsigned char zero[PG];

	for (int i = 0; i < NP; i++)
		if (who == 1 && i % 64 == DROPPED) {
			if (memcmp(m + (size_t)i * PG, zero, PG) && bad++ < 5)
				dprintf(1, "FAIL: child 1: dropped page %d is not zero\n", i);
		} else if (zt_pattern_check(m + (size_t)i * PG, PG, seed(i, who)) >= 0) {
			if (bad++ < 5)
				dprintf(1, "FAIL: %s %d: page %d holds other data\n", who ? "child" : "parent", who, i);
		}
	return bad != 0;
}

static int pfns(pid_t pid, unsigned char *m, uint64_t *out)
{
	char path[64];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = pread(fd, out, NP * sizeof(uint64_t), (off_t)((uintptr_t)m / PG * sizeof(uint64_t)));
	close(fd);
	return n == NP * sizeof(uint64_t) ? 0 : -1;
}

#define PFN(e) ((e) & ((1ULL << 55) - 1))
#define PRESENT(e) ((e) >> 63 & 1)

int main(int argc, char **argv)
{
	static uint64_t pp[NP], cp[NP];
	unsigned char *m;
	pid_t kids[2];
	int p[2];
	char c;

	zt_init(argc, argv);
	m = mmap(NULL, (size_t)NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || pipe(p))
		return 1;
	madvise(m, (size_t)NP * PG, MADV_NOHUGEPAGE);
	for (int i = 0; i < NP; i++)
		zt_pattern_fill(m + (size_t)i * PG, PG, 30000 + i);
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] < 0)
			return 1;
		if (!kids[k]) {
			close(p[0]);
			for (int i = k + 1; i < NP; i += 64)
				zt_pattern_fill(m + (size_t)i * PG, PG, seed(i, k + 1));
			for (int i = DROPPED; k == 0 && i < NP; i += 64)
				madvise(m + (size_t)i * PG, PG, MADV_DONTNEED);
			if (write(p[1], "c", 1) != 1)
				_exit(2);
			close(p[1]);
			zt_wait_term();
			_exit(check(m, k + 1));
		}
	}
	close(p[1]);
	for (int i = PARENT_WRITES; i < NP; i += 64)
		zt_pattern_fill(m + (size_t)i * PG, PG, seed(i, 0));
	if (read(p[0], &c, 1) != 1 || read(p[0], &c, 1) != 1)
		zt_fail("a child died in setup");
	close(p[0]);
	zt_ready();
	zt_wait_term();
	if (check(m, 0))
		zt_fail("parent view of the area differs");
	if (pfns(getpid(), m, pp))
		zt_fail("read own pagemap: %m");
	for (int k = 0; k < 2; k++) {
		int shared = 0, wrong = 0, absent = 0, who = k + 1;

		if (pfns(kids[k], m, cp)) {
			zt_fail("read child %d pagemap: %m", kids[k]);
			continue;
		}
		for (int i = 0; i < NP; i++) {
			int want = i % 64 != who && i % 64 != PARENT_WRITES;

			if (who == 1 && i % 64 == DROPPED) {
				if (PRESENT(cp[i]) && PFN(cp[i]) == PFN(pp[i]))
					wrong++;
				continue;
			}
			if (!PRESENT(pp[i]) || !PRESENT(cp[i]) || !PFN(pp[i])) {
				absent++;
				continue;
			}
			if ((PFN(pp[i]) == PFN(cp[i])) != want) {
				if (wrong++ < 3)
					zt_log("child %d page %d: pfn %llx, parent's %llx, want %s", who, i, (unsigned long long)PFN(cp[i]),
					       (unsigned long long)PFN(pp[i]), want ? "shared" : "a copy");
			}
			shared += PFN(pp[i]) == PFN(cp[i]);
		}
		if (absent)
			zt_fail("child %d: %d pages not present in parent or child", who, absent);
		if (wrong)
			zt_fail("child %d: %d pages shared or copied wrongly (%d of %d shared with the parent, want %d)", who, wrong,
				shared, NP, NP - (who == 1 ? 3 : 2) * NP / 64);
	}
	for (int k = 0; k < 2; k++) {
		int st;

		kill(kids[k], SIGTERM);
		if (waitpid(kids[k], &st, 0) != kids[k] || !WIFEXITED(st) || WEXITSTATUS(st))
			zt_fail("child %d view of the area differs (status 0x%x)", k + 1, st);
	}
	return zt_finish();
}
