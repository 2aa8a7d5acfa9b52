/* VM test target for soft-dirty pre-dumps (test/vm/softdirty.sh). Built
 * static for the VM.
 *
 * Maps NPAGES anonymous pages (without transparent huge pages, so that
 * soft-dirty has page granularity), fills every word of each page with a
 * value derived from the page number and its generation, and appends
 * "ready ADDR NPAGES" to the log file argv[1]. Then, polling every 20 ms:
 *   - the k-th SIGUSR1 rewrites set k (below) with generation k and logs
 *     "wrote k PAGE PAGE ...";
 *   - each SIGUSR2 checks every word of every page against the generation
 *     it was last written with and logs "OK n" or "BAD n ..." (the first
 *     wrong pages). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define NPAGES 4096ul
#define WORDS (PAGE / 8)

static unsigned long *area;
static unsigned char gen[NPAGES]; /* outside the area */
static int logfd;
static volatile sig_atomic_t usr1, usr2;

static void on_usr1(int s) { (void)s; usr1++; }
static void on_usr2(int s) { (void)s; usr2++; }

static unsigned long val(unsigned long page, unsigned long g, unsigned long w)
{
	return 0x5a5a000000000000ul ^ (g << 40) ^ (page << 12) ^ (w + 1);
}

static void __attribute__((format(printf, 1, 2))) logf_(const char *fmt, ...)
{
	char b[4096];
	va_list ap;
	va_start(ap, fmt);
	int l = vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	if (l > (int)sizeof b - 1)
		l = sizeof b - 1;
	if (write(logfd, b, l) != l)
		_exit(3);
}

static void fill(unsigned long page, unsigned long g)
{
	unsigned long *p = area + page * WORDS;
	for (unsigned long w = 0; w < WORDS; w++)
		p[w] = val(page, g, w);
	gen[page] = g;
}

/* The pages of set k: 1: 10..19; 2: 0, 1000..1007, NPAGES-1 (both ends of
 * the area); later: 3000+k..3000+k+4. */
static int set(int k, unsigned long *out)
{
	int n = 0;
	switch (k) {
	case 1:
		for (unsigned long p = 10; p < 20; p++)
			out[n++] = p;
		break;
	case 2:
		out[n++] = 0;
		for (unsigned long p = 1000; p < 1008; p++)
			out[n++] = p;
		out[n++] = NPAGES - 1;
		break;
	default:
		for (unsigned long p = 3000 + k; p < 3005ul + k && p < NPAGES; p++)
			out[n++] = p;
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	logfd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0666);
	if (logfd < 0)
		return 2;
	area = mmap(0, NPAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return 3;
	madvise(area, NPAGES * PAGE, MADV_NOHUGEPAGE);
	for (unsigned long p = 0; p < NPAGES; p++)
		fill(p, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, 0);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, 0);
	logf_("ready %lx %lu\n", (unsigned long)area, NPAGES);

	int done1 = 0, done2 = 0;
	for (;;) {
		while (done1 < usr1) {
			done1++;
			unsigned long pages[NPAGES];
			int n = set(done1, pages);
			char b[2048];
			int l = snprintf(b, sizeof b, "wrote %d", done1);
			for (int i = 0; i < n; i++) {
				fill(pages[i], done1);
				l += snprintf(b + l, sizeof b - l, " %lu", pages[i]);
			}
			logf_("%s\n", b);
		}
		while (done2 < usr2) {
			done2++;
			int bad = 0;
			char b[2048];
			int l = 0;
			for (unsigned long p = 0; p < NPAGES; p++) {
				unsigned long *q = area + p * WORDS;
				for (unsigned long w = 0; w < WORDS; w++) {
					if (q[w] != val(p, gen[p], w)) {
						if (bad < 8)
							l += snprintf(b + l, sizeof b - l, " page %lu word %lu: %#lx, want %#lx (gen %d);",
								      p, w, q[w], val(p, gen[p], w), gen[p]);
						bad++;
						break;
					}
				}
			}
			if (bad)
				logf_("BAD %d: %d pages wrong:%s\n", done2, bad, b);
			else
				logf_("OK %d: %lu pages right\n", done2, NPAGES);
		}
		struct timespec ts = { 0, 20000000 };
		nanosleep(&ts, 0);
	}
}
