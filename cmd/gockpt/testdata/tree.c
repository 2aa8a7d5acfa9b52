/* CLI test target for image x: a root with two children, one of which has
 * a child of its own; the root and its first child share a pipe, whose ends
 * sit at fds 5 and 9. Each task works in DIR (its cwd) and writes
 * DIR/ready-N when set up; the root writes DIR/ready once all are. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dir;

static void ready(const char *name) {
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	close(open(p, O_WRONLY | O_CREAT, 0600));
}

static void waitfor(const char *name) {
	char p[4096];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	while (stat(p, &st) != 0) usleep(2000);
}

static void idle(void) {
	for (;;) pause();
}

int main(int argc, char **argv) {
	int p[2];
	if (argc < 2) return 2;
	dir = argv[1];
	if (chdir(dir) || pipe(p)) return 3;
	dup2(p[0], 5);
	dup2(p[1], 9);
	close(p[0]);
	close(p[1]);
	if (fork() == 0) {
		if (fork() == 0) {
			ready("ready-grandchild");
			idle();
		}
		waitfor("ready-grandchild");
		close(9);
		ready("ready-child");
		idle();
	}
	waitfor("ready-child");
	if (fork() == 0) {
		close(5);
		close(9);
		ready("ready-second");
		idle();
	}
	waitfor("ready-second");
	ready("ready");
	idle();
}
