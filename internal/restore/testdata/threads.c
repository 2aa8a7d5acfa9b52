/* Restore test target: 4 threads, each with its own TLS value and
 * sigaltstack, taking a shared mutex to bump a counter. The main thread logs
 * "ok N" when every thread made progress with its state intact.
 * Usage: threads DIR */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define NT 4
static __thread long tls_value;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long counter, progress[NT];
static volatile int bad[NT];
static char stacks[NT][16384];

static void *run(void *arg) {
	long i = (long)arg;
	tls_value = 1000 + i * 7;
	stack_t ss = {.ss_sp = stacks[i], .ss_size = sizeof stacks[i]};
	sigaltstack(&ss, 0);
	for (;;) {
		stack_t cur;
		sigaltstack(0, &cur);
		if (tls_value != 1000 + i * 7 || cur.ss_sp != stacks[i] || cur.ss_size != sizeof stacks[i]) bad[i] = 1;
		pthread_mutex_lock(&mu);
		counter++;
		progress[i]++;
		pthread_mutex_unlock(&mu);
		struct timespec ts = {0, 1000 * 1000};
		nanosleep(&ts, 0);
	}
	return 0;
}

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	char path[4096];
	snprintf(path, sizeof path, "%s/log", argv[1]);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	pthread_t t[NT];
	for (long i = 0; i < NT; i++) pthread_create(&t[i], 0, run, (void *)i);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	/* State is checked every round; progress over 10 rounds (200 ms), so
	 * that a loaded machine does not make a slow thread look stuck. */
	long last[NT] = {0};
	for (unsigned long n = 0;; n++) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, 0);
		int ok = 1;
		pthread_mutex_lock(&mu);
		for (int i = 0; i < NT; i++) {
			if (bad[i]) ok = 0;
			if (n % 10 == 9) {
				if (progress[i] == last[i]) ok = 0;
				last[i] = progress[i];
			}
		}
		pthread_mutex_unlock(&mu);
		fprintf(log, ok ? "ok %lu\n" : "BAD %lu\n", n);
	}
}
