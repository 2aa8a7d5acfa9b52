/* Dump test target: known patterns in anonymous, heap and private file-backed
 * memory, an open log file, optional threads and children.
 * Usage: patterns DIR [threads] [children]
 * Writes DIR/ready (its addresses) when set up, then loops: every 5 ms it
 * checks every pattern and appends "ok N" or "BAD ..." to DIR/log. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ANON_SIZE (4 << 20)
#define HEAP_SIZE (1 << 20)
#define FILE_SIZE (64 << 10)

static unsigned char *anon, *heap, *fmap;

static unsigned char pat(size_t i, int salt) { return (unsigned char)(i * 131 + (i >> 12) + salt); }

static int check(void) {
	for (size_t i = 0; i < ANON_SIZE; i += 997)
		if (anon[i] != pat(i, 1)) return 0;
	for (size_t i = 0; i < HEAP_SIZE; i += 991)
		if (heap[i] != pat(i, 2)) return 0;
	/* even pages of the file mapping were written (COW), odd ones not */
	for (size_t i = 0; i < FILE_SIZE; i += 509) {
		unsigned char want = ((i / 4096) % 2 == 0) ? pat(i, 3) : pat(i, 4);
		if (fmap[i] != want) return 0;
	}
	return 1;
}

static void *spin(void *arg) {
	(void)arg;
	for (;;) {
		struct timespec ts = {0, 3 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	const char *dir = argv[1];
	int threads = argc > 2 ? atoi(argv[2]) : 0;
	int children = argc > 3 ? atoi(argv[3]) : 0;
	char path[4096];

	anon = mmap(0, ANON_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < ANON_SIZE; i++) anon[i] = pat(i, 1);
	heap = malloc(HEAP_SIZE);
	for (size_t i = 0; i < HEAP_SIZE; i++) heap[i] = pat(i, 2);

	snprintf(path, sizeof path, "%s/mapped", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unsigned char *buf = malloc(FILE_SIZE);
	for (size_t i = 0; i < FILE_SIZE; i++) buf[i] = pat(i, 4);
	if (write(fd, buf, FILE_SIZE) != FILE_SIZE) return 3;
	fmap = mmap(0, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	for (size_t i = 0; i < FILE_SIZE; i++)
		if ((i / 4096) % 2 == 0) fmap[i] = pat(i, 3);
	/* touch odd pages so they are present but still the file's */
	volatile unsigned char sink = 0;
	for (size_t i = 4096; i < FILE_SIZE; i += 8192) sink += fmap[i];
	(void)sink;

	for (int i = 0; i < children; i++) {
		pid_t p = fork();
		if (p == 0) {
			for (;;) pause();
		}
	}
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		pthread_create(&t, 0, spin, 0);
	}

	snprintf(path, sizeof path, "%s/log", dir);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	snprintf(path, sizeof path, "%s/ready.tmp", dir);
	FILE *r = fopen(path, "w");
	fprintf(r, "%lx %lx %lx\n", (unsigned long)anon, (unsigned long)heap, (unsigned long)fmap);
	fclose(r);
	char final[4096];
	snprintf(final, sizeof final, "%s/ready", dir);
	rename(path, final);

	for (unsigned long n = 0;; n++) {
		fprintf(log, check() ? "ok %lu\n" : "BAD %lu\n", n);
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}
