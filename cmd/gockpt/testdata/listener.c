/* TCP listener test target: listens on 127.0.0.1 (a port the kernel picks),
 * writes the port to DIR/port and DIR/ready, then sleeps. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char path[4096];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof a;
	if (argc < 2) return 2;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 5) || getsockname(fd, (struct sockaddr *)&a, &l)) return 3;
	snprintf(path, sizeof path, "%s/port", argv[1]);
	FILE *f = fopen(path, "w");
	fprintf(f, "%d\n", ntohs(a.sin_port));
	fclose(f);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	for (;;) pause();
}
