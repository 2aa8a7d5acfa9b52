/* A target that replaces itself with execve between pre-dumps: same PID,
 * same start time, a new address space. First run: waits for DIR/go, then
 * execs itself with "second". Second run: maps 8 MiB, fills it, writes
 * DIR/ready2, and logs "ok N" (or "BAD") after checking it every 2 ms.
 * Usage: execer DIR [second] */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char path[512];
	struct timespec ts = {0, 2 * 1000 * 1000};
	if (argc < 3) {
		snprintf(path, sizeof path, "%s/ready", argv[1]);
		fclose(fopen(path, "w"));
		snprintf(path, sizeof path, "%s/go", argv[1]);
		while (access(path, F_OK)) nanosleep(&ts, 0);
		execl("/proc/self/exe", argv[0], argv[1], "second", (char *)0);
		return 1;
	}
	long n = 2048;
	unsigned long *a = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (long i = 0; i < n * 512; i++) a[i] = i * 7;
	snprintf(path, sizeof path, "%s/log", argv[1]);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	snprintf(path, sizeof path, "%s/ready2", argv[1]);
	fclose(fopen(path, "w"));
	for (unsigned long r = 1;; r++) {
		long p = r % n;
		for (long i = 0; i < 512; i++) a[p * 512 + i] = (p * 512 + i) * 7;
		int bad = 0;
		for (long i = 0; i < n * 512; i += 97)
			if (a[i] != i * 7) bad = 1;
		fprintf(log, bad ? "BAD %lu\n" : "ok %lu\n", r);
		nanosleep(&ts, 0);
	}
}
