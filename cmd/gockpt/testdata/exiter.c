/* CLI test target: writes DIR/ready, then waits for DIR/go and exits 7. */
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
	close(open(ready, O_WRONLY | O_CREAT, 0600));
	for (;;) {
		struct stat st;
		if (stat(go, &st) == 0) return 7;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}
