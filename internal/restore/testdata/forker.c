/* Restore test target that forks all the time: each round it forks a child
 * that rewrites part of a 4 MiB area it inherited, checks it and exits; the
 * parent reaps it, rewrites its own copy, checks it, and logs "ok N" every
 * 20 rounds ("BAD ..." if any check failed). Pre-dumps and dumps catch the
 * tree with or without a child, in any state of its short life.
 * Usage: forker DIR */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGES 1024
static unsigned long *area;
static unsigned long gen[PAGES];

static void fill(long p, unsigned long v) {
	unsigned long *w = area + p * 512;
	for (int i = 0; i < 512; i++) w[i] = v * 31 + i + p;
	gen[p] = v;
}

static int check(void) {
	for (long p = 0; p < PAGES; p++)
		for (int i = 0; i < 512; i += 64)
			if (area[p * 512 + i] != gen[p] * 31 + i + p) return -1;
	return 0;
}

int main(int argc, char **argv) {
	char path[512];
	area = mmap(0, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (long p = 0; p < PAGES; p++) fill(p, 1);
	snprintf(path, sizeof path, "%s/log", argv[1]);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	fclose(fopen(path, "w"));
	unsigned long round = 0;
	for (;;) {
		round++;
		pid_t c = fork();
		if (c == 0) {
			for (long p = round % 7; p < PAGES; p += 7) fill(p, round + 1000);
			struct timespec ts = {0, 2 * 1000 * 1000};
			nanosleep(&ts, 0);
			_exit(check() ? 1 : 0);
		}
		int st = 0;
		if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(log, "BAD child %d status %#x round %lu\n", c, st, round);
			continue;
		}
		for (long p = round % 5; p < PAGES; p += 5) fill(p, round);
		if (check()) fprintf(log, "BAD parent round %lu\n", round);
		if (round % 20 == 0) fprintf(log, "ok %lu\n", round);
	}
}
