/* Holds MIB MiB of patterned anonymous memory and checks all of it in a loop,
 * appending "ok N" or "BAD N" to DIR/log after each full pass.
 * Usage: bigcheck DIR MIB */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3) return 2;
	size_t n = (size_t)atol(argv[2]) << 20;
	unsigned long *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return 3;
	size_t words = n / sizeof *p;
	for (size_t i = 0; i < words; i++) p[i] = i * 0x9e3779b97f4a7c15ul;
	char path[4096];
	snprintf(path, sizeof path, "%s/log", argv[1]);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	fclose(fopen(path, "w"));
	for (unsigned long pass = 0;; pass++) {
		int ok = 1;
		for (size_t i = 0; i < words; i += 509)
			if (p[i] != i * 0x9e3779b97f4a7c15ul) ok = 0;
		fprintf(log, "%s %lu\n", ok ? "ok" : "BAD", pass);
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}
