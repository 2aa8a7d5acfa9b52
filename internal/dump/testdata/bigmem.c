/* Holds MIB MiB of touched anonymous memory, writes DIR/ready, sleeps.
 * With a third argument "fresh" the memory is mapped but left untouched.
 * Usage: bigmem DIR MIB [fresh] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3) return 2;
	size_t n = (size_t)atol(argv[2]) << 20;
	unsigned char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) return 3;
	if (argc < 4)
		for (size_t i = 0; i < n; i += 8) *(unsigned long *)(p + i) = i * 0x9e3779b97f4a7c15ul;
	char path[4096];
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	FILE *f = fopen(path, "w");
	fprintf(f, "%lx\n", (unsigned long)p);
	fclose(f);
	for (;;) pause();
}
