/* pagewriter: a target for incremental dump tests. It maps NPAGES anonymous
 * pages and changes them only when told, so a test knows exactly which
 * pages were written between two dumps.
 *
 *   pagewriter DIR NPAGES
 *
 * Each process of the tree takes commands from DIR/cmd.PID when it gets
 * SIGUSR1 and answers in DIR/ack.PID (written to a temporary name, then
 * renamed). A command file is a sequence number line, then one command per
 * line:
 *   w I V      fill page I with the pattern of value V
 *   d I        MADV_DONTNEED page I (it then reads as zeros)
 *   r I N V    unmap pages I..I+N-1 and map fresh ones there, filled with V
 *   f          fork a child (which answers its own commands); ack names it
 *   v          check every page against what was last done to it
 * The answer is "SEQ ok [extra]" or "SEQ bad: why". DIR/info.PID holds the
 * area's address and size.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096

static const char *dir;
static unsigned char *area;
static long npages;
static long *expect; /* value last written per page; 0: zeros */
static volatile sig_atomic_t got;

static void on_usr1(int sig) { (void)sig; got = 1; }

static uint64_t word(long page, long v, long i)
{
	return ((uint64_t)page << 32) ^ (uint64_t)v ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);
}

static void fill(long p, long v)
{
	uint64_t *w = (uint64_t *)(area + p * PAGE);
	for (long i = 0; i < PAGE / 8; i++)
		w[i] = v ? word(p, v, i) : 0;
	expect[p] = v;
}

static int check(char *why, size_t n)
{
	for (long p = 0; p < npages; p++) {
		uint64_t *w = (uint64_t *)(area + p * PAGE);
		for (long i = 0; i < PAGE / 8; i++) {
			uint64_t want = expect[p] ? word(p, expect[p], i) : 0;
			if (w[i] != want) {
				snprintf(why, n, "page %ld word %ld: %#llx, want %#llx (value %ld)", p, i,
					 (unsigned long long)w[i], (unsigned long long)want, expect[p]);
				return -1;
			}
		}
	}
	return 0;
}

static void write_file(const char *name, const char *text)
{
	char tmp[512], path[512];
	snprintf(tmp, sizeof(tmp), "%s/.%s.%d", dir, name, getpid());
	snprintf(path, sizeof(path), "%s/%s.%d", dir, name, getpid());
	FILE *f = fopen(tmp, "w");
	if (!f)
		exit(2);
	fputs(text, f);
	fclose(f);
	rename(tmp, path);
}

static void announce(void)
{
	char b[128];
	snprintf(b, sizeof(b), "%lx %ld\n", (unsigned long)area, npages);
	write_file("info", b);
}

static void command(void)
{
	char path[512], line[256], ans[512] = "", extra[64] = "";
	long seq = -1;
	snprintf(path, sizeof(path), "%s/cmd.%d", dir, getpid());
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "%ld", &seq) != 1) {
		fclose(f);
		return;
	}
	int bad = 0;
	while (!bad && fgets(line, sizeof(line), f)) {
		long a, b, c;
		if (sscanf(line, "w %ld %ld", &a, &b) == 2 && a >= 0 && a < npages) {
			fill(a, b);
		} else if (sscanf(line, "d %ld", &a) == 1 && a >= 0 && a < npages) {
			madvise(area + a * PAGE, PAGE, MADV_DONTNEED);
			expect[a] = 0;
		} else if (sscanf(line, "r %ld %ld %ld", &a, &b, &c) == 3 && a >= 0 && b > 0 && a + b <= npages) {
			munmap(area + a * PAGE, b * PAGE);
			if (mmap(area + a * PAGE, b * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
				snprintf(ans, sizeof(ans), "%ld bad: remap failed\n", seq);
				bad = 1;
				break;
			}
			for (long p = a; p < a + b; p++)
				fill(p, c);
		} else if (line[0] == 'f') {
			pid_t pid = fork();
			if (pid < 0) {
				snprintf(ans, sizeof(ans), "%ld bad: fork failed\n", seq);
				bad = 1;
			} else if (pid == 0) {
				fclose(f);
				announce();
				return;
			}
			snprintf(extra, sizeof(extra), " %d", pid);
		} else if (line[0] == 'v') {
			char why[256];
			if (check(why, sizeof(why))) {
				snprintf(ans, sizeof(ans), "%ld bad: %s\n", seq, why);
				bad = 1;
			}
		} else if (line[0] != '\n') {
			snprintf(ans, sizeof(ans), "%ld bad: unknown command %s", seq, line);
			bad = 1;
		}
	}
	fclose(f);
	if (!bad)
		snprintf(ans, sizeof(ans), "%ld ok%s\n", seq, extra);
	write_file("ack", ans);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 1;
	dir = argv[1];
	npages = atol(argv[2]);
	area = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	expect = calloc(npages, sizeof(long));
	if (area == MAP_FAILED || !expect)
		return 1;
	for (long p = 0; p < npages; p++)
		fill(p, 1);

	sigset_t usr1, old;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	struct sigaction sa = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &sa, NULL);
	announce();
	for (;;) {
		while (!got)
			sigsuspend(&old);
		got = 0;
		command();
	}
}
