/* The demo process: counts, keeps a memory pattern, and logs every 100 ms. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	size_t n = 16 << 20;
	unsigned char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 131 + (i >> 12));
	FILE *f = fopen(argv[1], "a");
	setvbuf(f, 0, _IOLBF, 0);
	for (unsigned long tick = 0;; tick++) {
		int ok = 1;
		for (size_t i = 0; i < n; i += 4093)
			if (p[i] != (unsigned char)(i * 131 + (i >> 12))) ok = 0;
		fprintf(f, "tick %lu pid %d memory %s\n", tick, getpid(), ok ? "ok" : "BAD");
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}
