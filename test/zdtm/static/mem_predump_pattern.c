// zdtm: desc: 64 MiB of private anonymous memory rewritten all the time: a moving window of pages gets counter-derived values (each page checked before it is rewritten), a small area is replaced by a fresh mapping and partly refilled, runs of pages are dropped with MADV_DONTNEED (must read back as zeros); at the end every page must hold exactly the last value written to it
// zdtm: modes: restore snapshot twice predump predump-hashes make-lazy criu-restore criu-dump criu-predump
/*
 * Written for the pre-dump modes: between iterations the test keeps writing,
 * so every pre-dump and the final dump see pages that changed since the
 * previous one, pages that did not, pages that became zero again
 * (MADV_DONTNEED) and a mapping that did not exist at the previous
 * iteration. Whatever the tracker (uffd-wp, soft-dirty, content hashes)
 * misses shows up as a page holding an older value, or stale data where
 * zeros belong.
 *
 * The small area is "unmapped and mapped again" with mmap(MAP_FIXED) over
 * it, which the kernel does as munmap + mmap in one step: old pages freed,
 * a new area with no pages. A separate munmap() then mmap() would leave a
 * moment with a hole in /proc/PID/maps; a checkpoint taken in that moment
 * would rightly restore the hole, and the runner's maps comparison would
 * report it.
 *
 * Every page's expected value is a function of (page index, version); the
 * versions live in a table, with a running sum and the newest version kept
 * elsewhere, so that a stale table page is caught as well as a stale data
 * page.
 */
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define AREA_SIZE (64UL << 20)
#define WINDOW 61      /* pages rewritten per step (not a divisor of the area: windows drift) */
#define SMALL_PAGES 16 /* the area replaced by a fresh mapping */
#define DROP_EVERY 16  /* steps between MADV_DONTNEEDs */
#define REMAP_EVERY 32 /* steps between replacements of the small area */
#define MAX_REPORTS 10

static long pg;
static size_t npages;
static unsigned char *area;  /* npages pages */
static uint32_t *ver;        /* npages versions; 0: the page must be all zeros */
static unsigned char *small; /* SMALL_PAGES pages between two PROT_NONE guards */

/* Kept apart from the table: a stale table page then disagrees with them. */
static uint32_t counter;   /* the newest version written */
static uint64_t ver_sum;   /* sum of ver[] */
static uint32_t small_gen; /* generation of the small area's content */
static size_t pos;         /* start of the next window */
static unsigned long steps, drops, remaps, reports;

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	x ^= x >> 33;
	return x;
}

static void fill_page(void *p, uint64_t id, uint32_t v)
{
	uint64_t *w = p, seed = mix(id << 32 | v);

	for (size_t j = 0; j < pg / sizeof(*w); j++)
		w[j] = (seed ^ (j * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL;
}

/* Returns the index of the first word that differs, or -1. v 0: zeros. */
static long check_page(const void *p, uint64_t id, uint32_t v)
{
	const uint64_t *w = p;
	uint64_t seed = mix(id << 32 | v);

	for (size_t j = 0; j < pg / sizeof(*w); j++) {
		uint64_t want = v ? (seed ^ (j * 0x9e3779b97f4a7c15ULL)) * 0xbf58476d1ce4e5b9ULL : 0;
		if (w[j] != want)
			return (long)j;
	}
	return -1;
}

/* zt_fail for a page that differs, with the version it holds if a recent one. */
static void report(const char *what, size_t i, const void *p, uint64_t id, uint32_t v, long word)
{
	if (reports++ >= MAX_REPORTS) {
		if (reports == MAX_REPORTS + 1)
			zt_fail("more pages differ; reports stop here");
		return;
	}
	const uint64_t *w = p;
	long found = -1;
	for (uint32_t c = counter; c > 0 && counter - c < 4 * npages && found < 0; c--)
		if (check_page(p, id, c) < 0)
			found = c;
	if (found < 0 && check_page(p, id, 0) < 0)
		found = 0;
	char holds[64] = "no recent version";
	if (found >= 0)
		snprintf(holds, sizeof(holds), "version %ld", found);
	zt_fail("%s page %zu (%p): want version %u, word %ld is 0x%016llx; the page holds %s (step %lu, newest version %u)",
		what, i, p, v, word, (unsigned long long)w[word], holds, steps, counter);
}

/* Small area page j of generation g: a page is left zero every third time. */
static uint32_t small_ver(size_t j, uint32_t g)
{
	return (j + g) % 3 == 0 ? 0 : g;
}

static void check_small(const char *when)
{
	for (size_t j = 0; j < SMALL_PAGES; j++) {
		unsigned char *p = small + j * pg;
		long w = check_page(p, 0x80000000ULL + j, small_ver(j, small_gen));
		if (w >= 0) {
			char what[64];

			snprintf(what, sizeof(what), "small area (%s)", when);
			report(what, j, p, 0x80000000ULL + j, small_ver(j, small_gen), w);
		}
	}
}

static void fill_small(void)
{
	for (size_t j = 0; j < SMALL_PAGES; j++)
		if (small_ver(j, small_gen))
			fill_page(small + j * pg, 0x80000000ULL + j, small_gen);
}

static void set_ver(size_t i, uint32_t v)
{
	ver_sum += (uint64_t)v - ver[i];
	ver[i] = v;
}

/* Rewrite WINDOW pages from pos, each checked first. */
static void step_window(void)
{
	for (size_t k = 0; k < WINDOW; k++) {
		size_t i = (pos + k) % npages;
		unsigned char *p = area + i * pg;
		long w = check_page(p, i, ver[i]);

		if (w >= 0)
			report("before rewrite:", i, p, i, ver[i], w);
		fill_page(p, i, ++counter);
		set_ver(i, counter);
	}
	pos = (pos + WINDOW) % npages;
}

/*
 * Drop a run of 8 pages half the area away from the window, and 8 scattered
 * ones after it (never the window's newest page).
 */
static void drop_pages(void)
{
	size_t q = (pos + npages / 2) % npages;

	if (q + 8 > npages)
		q = npages - 8;
	if (madvise(area + q * pg, 8 * pg, MADV_DONTNEED))
		zt_fail("madvise(MADV_DONTNEED) of 8 pages at %zu: %s", q, strerror(errno));
	for (size_t k = 0; k < 8; k++)
		set_ver(q + k, 0);
	for (size_t k = 0; k < 8; k++) {
		size_t i = (q + 97 * (k + 1) + (steps / DROP_EVERY) % 512) % npages;

		if (madvise(area + i * pg, pg, MADV_DONTNEED))
			zt_fail("madvise(MADV_DONTNEED) of page %zu: %s", i, strerror(errno));
		set_ver(i, 0);
	}
	drops++;
}

/* Replace the small area by a fresh mapping: zeros, then refill most of it. */
static void remap_small(void)
{
	check_small("before it was replaced");
	void *p = mmap(small, SMALL_PAGES * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p != small) {
		zt_fail("mmap(MAP_FIXED) over the small area: %s", strerror(errno));
		return;
	}
	for (size_t j = 0; j < SMALL_PAGES; j++)
		if (check_page(small + j * pg, 0, 0) >= 0)
			zt_fail("fresh mapping page %zu is not zero", j);
	small_gen++;
	fill_small();
	remaps++;
}

static void check_all(void)
{
	uint64_t sum = 0;
	uint32_t newest = 0;

	for (size_t i = 0; i < npages; i++) {
		long w = check_page(area + i * pg, i, ver[i]);

		if (w >= 0)
			report("at the end:", i, area + i * pg, i, ver[i], w);
		sum += ver[i];
		if (ver[i] > newest)
			newest = ver[i];
	}
	if (sum != ver_sum)
		zt_fail("version table sums to %llu, the running sum says %llu (a stale table page?)",
			(unsigned long long)sum, (unsigned long long)ver_sum);
	/* The window's last page got the newest version; drops only ever hit other pages. */
	if (steps > 0 && newest != counter)
		zt_fail("newest version in the table %u, counter %u (a stale table page or counter?)", newest, counter);
	check_small("at the end");
}

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	pg = sysconf(_SC_PAGESIZE);
	npages = AREA_SIZE / pg;
	area = mmap(NULL, AREA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ver = mmap(NULL, npages * sizeof(*ver), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *guarded = mmap(NULL, (SMALL_PAGES + 2) * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || ver == MAP_FAILED || guarded == MAP_FAILED) {
		zt_fail("mmap: %s", strerror(errno));
		return 1;
	}
	/* Guard pages keep the small area a separate mapping whatever the kernel merges. */
	small = guarded + pg;
	if (mprotect(small, SMALL_PAGES * pg, PROT_READ | PROT_WRITE)) {
		zt_fail("mprotect: %s", strerror(errno));
		return 1;
	}
	/* Every page but every seventh gets a first version; those stay zero until the window comes. */
	for (size_t i = 0; i < npages; i++)
		if (i % 7 != 3) {
			fill_page(area + i * pg, i, ++counter);
			set_ver(i, counter);
		}
	small_gen = 1;
	fill_small();
	zt_log("area %p (%zu pages), versions %p, small area %p", (void *)area, npages, (void *)ver, (void *)small);
	zt_ready();

	while (!zt_stop) {
		struct timespec ts = { 0, 1000000 };

		step_window();
		steps++;
		if (steps % DROP_EVERY == 0)
			drop_pages();
		if (steps % REMAP_EVERY == 0)
			remap_small();
		/* SIGTERM interrupts the sleep (EINTR): the loop then ends. */
		nanosleep(&ts, NULL);
	}

	check_all();
	zt_log("%lu steps, %lu drops, %lu remaps, newest version %u", steps, drops, remaps, counter);
	return zt_finish();
}
