/* --ext-unix-sk test target: a dgram socket connected to the server at
 * argv[2] (outside the tree) says "before", writes DIR/ready, waits for
 * DIR/go, says "after" on the same socket and exits 0 (3 if it cannot). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char ready[4096], go[4096];
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (argc < 3) return 2;
	snprintf(ready, sizeof ready, "%s/ready", argv[1]);
	snprintf(go, sizeof go, "%s/go", argv[1]);
	snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[2]);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) || send(fd, "before", 6, 0) != 6) return 3;
	close(open(ready, O_WRONLY | O_CREAT, 0600));
	for (;;) {
		struct stat st;
		if (stat(go, &st) == 0) return send(fd, "after", 5, 0) == 5 ? 0 : 3;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}
