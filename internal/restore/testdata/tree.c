/* Restore test target: a process tree in its own session.
 * Root (session leader) forks: Z, which exits with code 42 at once and stays a
 * zombie (unreaped) until DIR/go appears; A, leader of its own process group,
 * which has "bytes in flight" waiting in a pipe from root, unread until DIR/go
 * appears; B, in root's group. Every 5 ms root checks sessions and groups and
 * logs "ok N". When DIR/go appears, root reaps Z and logs "zombie ok" if its
 * status is exit 42, A reads the pipe and logs "pipe ok" if the bytes match.
 * Usage: tree DIR */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char msg[] = "bytes in flight";
static char go[4096], logpath[4096];

static void nap(void) { struct timespec ts = {0, 5 * 1000 * 1000}; nanosleep(&ts, 0); }
static int exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

int main(int argc, char **argv) {
	if (argc < 2) return 2;
	snprintf(go, sizeof go, "%s/go", argv[1]);
	snprintf(logpath, sizeof logpath, "%s/log", argv[1]);
	pid_t root = getpid();
	int p[2];
	if (pipe(p)) return 3;
	pid_t z = fork();
	if (z == 0) _exit(42);
	pid_t a = fork();
	if (a == 0) {
		setpgid(0, 0);
		close(p[1]);
		FILE *log = fopen(logpath, "a");
		setvbuf(log, 0, _IOLBF, 0);
		while (!exists(go)) nap();
		char buf[64] = {0};
		ssize_t n = read(p[0], buf, sizeof buf);
		int ok = n == (ssize_t)strlen(msg) && !memcmp(buf, msg, n) && getpgid(0) == getpid() && getsid(0) == root && getppid() == root;
		fprintf(log, ok ? "pipe ok\n" : "BAD pipe %zd %s\n", n, buf);
		for (;;) pause();
	}
	pid_t b = fork();
	if (b == 0) {
		for (;;) pause();
	}
	close(p[0]);
	if (write(p[1], msg, strlen(msg)) != (ssize_t)strlen(msg)) return 4;
	while (getpgid(a) != a) nap();
	FILE *log = fopen(logpath, "a");
	setvbuf(log, 0, _IOLBF, 0);
	char path[4096];
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	int reaped = 0;
	for (unsigned long n = 0;; n++) {
		int ok = getsid(0) == root && getpgid(0) == root && getpgid(a) == a && getpgid(b) == root && getsid(a) == root;
		fprintf(log, ok ? "ok %lu\n" : "BAD %lu\n", n);
		if (!reaped && exists(go)) {
			int st = 0;
			pid_t w = waitpid(z, &st, WNOHANG);
			fprintf(log, w == z && WIFEXITED(st) && WEXITSTATUS(st) == 42 ? "zombie ok\n" : "BAD zombie %d %x\n", (int)w, st);
			reaped = 1;
		}
		nap();
	}
}
