/* UDP test target: binds 127.0.0.1 (a port the kernel picks), writes the
 * port to DIR/port and DIR/ready, waits for DIR/go, writes DIR/checked
 * ("empty" if its queue is empty, else "queued"), then waits for a
 * datagram and writes it to DIR/got. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char path[4096], go[4096], buf[64];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	if (argc < 2) return 2;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) return 3;
	snprintf(path, sizeof path, "%s/port", argv[1]);
	FILE *f = fopen(path, "w");
	fprintf(f, "%d\n", ntohs(a.sin_port));
	fclose(f);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	snprintf(go, sizeof go, "%s/go", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	for (;;) {
		struct stat st;
		if (stat(go, &st) == 0) break;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
	int empty = recv(fd, buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN;
	snprintf(path, sizeof path, "%s/checked", argv[1]);
	f = fopen(path, "w");
	fprintf(f, "%s", empty ? "empty" : "queued");
	fclose(f);
	int n = recv(fd, buf, sizeof buf, 0);
	if (n < 0) return 5;
	snprintf(path, sizeof path, "%s/got", argv[1]);
	f = fopen(path, "w");
	fwrite(buf, 1, n, f);
	fclose(f);
	return 0;
}
