/* COW test target: fills 256 MiB of private memory, forks a child that
 * keeps it shared copy-on-write, writes DIR/ready once the child runs,
 * and both wait for DIR/go, then exit 0. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SIZE (256UL << 20)

static void wait_go(const char *go) {
	for (;;) {
		struct stat st;
		if (stat(go, &st) == 0) return;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}

int main(int argc, char **argv) {
	char ready[4096], go[4096];
	int p[2];
	char c;
	if (argc < 2 || pipe(p)) return 2;
	snprintf(ready, sizeof ready, "%s/ready", argv[1]);
	snprintf(go, sizeof go, "%s/go", argv[1]);
	unsigned char *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) return 2;
	for (size_t i = 0; i < SIZE; i += 4096) m[i] = (unsigned char)(i >> 12) | 1;
	pid_t kid = fork();
	if (kid == 0) {
		if (write(p[1], "r", 1) != 1) _exit(2);
		wait_go(go);
		_exit(m[4096] == 1 ? 0 : 3);
	}
	if (read(p[0], &c, 1) != 1) return 2;
	close(open(ready, O_WRONLY | O_CREAT, 0600));
	wait_go(go);
	int st;
	waitpid(kid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 3;
}
