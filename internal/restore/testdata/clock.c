/* Restore test target: the vDSO clock and rseq. Every 2 ms: CLOCK_MONOTONIC
 * from the vDSO must not go backwards and must advance, and sched_getcpu()
 * must equal the cpu_id the kernel keeps in this thread's rseq area (glibc
 * registers it; restore must register it again). Logs "ok N".
 * Usage: clock DIR */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/rseq.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	char path[4096];
	snprintf(path, sizeof path, "%s/log", argv[1]);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	if (__rseq_size == 0) return 3; /* glibc did not register rseq */
	volatile struct rseq *rs = (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	struct timespec last;
	clock_gettime(CLOCK_MONOTONIC, &last);
	for (unsigned long n = 0;; n++) {
		struct timespec ts = {0, 2 * 1000 * 1000}, now;
		nanosleep(&ts, 0);
		clock_gettime(CLOCK_MONOTONIC, &now);
		int forward = now.tv_sec > last.tv_sec || (now.tv_sec == last.tv_sec && now.tv_nsec > last.tv_nsec);
		int cpu = sched_getcpu();
		int ok = forward && cpu >= 0 && (uint32_t)cpu == rs->cpu_id && (int32_t)rs->cpu_id_start >= 0;
		fprintf(log, ok ? "ok %lu\n" : "BAD %lu cpu %d rseq %d\n", n, cpu, (int)rs->cpu_id);
		last = now;
	}
}
