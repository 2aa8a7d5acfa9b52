/* --inherit-fd test target: says "before" on stdout (a pipe), writes
 * DIR/ready, waits for DIR/go, says "after" on stdout and exits 0. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char ready[4096], go[4096];
	if (argc < 2) return 2;
	snprintf(ready, sizeof ready, "%s/ready", argv[1]);
	snprintf(go, sizeof go, "%s/go", argv[1]);
	if (write(1, "before\n", 7) != 7) return 3;
	close(open(ready, O_WRONLY | O_CREAT, 0600));
	for (;;) {
		struct stat st;
		if (stat(go, &st) == 0) return write(1, "after\n", 6) == 6 ? 0 : 3;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}
