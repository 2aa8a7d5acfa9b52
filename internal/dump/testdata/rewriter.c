/* Holds MIB MiB of touched anonymous memory, writes DIR/ready with the
 * area's address, then rewrites PERMILLE thousandths of its pages per
 * second (default 20: 2 %/s), spread evenly in time: every 10 ms it changes
 * one word in each of the pages due by then. Pages are visited in a fixed
 * permutation (a stride of about 0.618 of the area, coprime to its page
 * count), so consecutive writes are far apart and no page is written twice
 * before every other page was written once. After a stall (the process was
 * frozen) it catches up on at most 100 ms worth of writes.
 * Usage: rewriter DIR MIB [PERMILLE] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long gcd(unsigned long a, unsigned long b)
{
	while (b) {
		unsigned long t = a % b;
		a = b;
		b = t;
	}
	return a;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	size_t n = (size_t)atol(argv[2]) << 20;
	double permille = argc > 3 ? atof(argv[3]) : 20;
	unsigned long npages = n / PAGE;
	unsigned char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || npages == 0)
		return 3;
	for (size_t i = 0; i < n; i += 8)
		*(unsigned long *)(p + i) = i * 0x9e3779b97f4a7c15ul;
	unsigned long stride = (unsigned long)(npages * 0.6180339887) | 1;
	while (gcd(stride, npages) != 1)
		stride += 2;
	char path[4096];
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	FILE *f = fopen(path, "w");
	if (!f)
		return 4;
	fprintf(f, "%lx %lu\n", (unsigned long)p, npages);
	fclose(f);

	double rate = npages * permille / 1000; /* pages per second */
	double start = now();
	unsigned long done = 0, cursor = 0, gen = 1;
	for (;;) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, 0);
		unsigned long due = (unsigned long)((now() - start) * rate);
		if (due > done + (unsigned long)(rate / 10))
			done = due - (unsigned long)(rate / 10);
		for (; done < due; done++) {
			unsigned long pg = cursor * stride % npages;
			volatile unsigned long *w = (unsigned long *)(p + pg * PAGE + (cursor % (PAGE / 8)) * 8);
			*w += gen;
			if (++cursor == npages) {
				cursor = 0;
				gen++;
			}
		}
	}
}
