/* tcpconns DIR PORT N [echo]: opens N TCP connections to 127.0.0.1:PORT,
 * writes DIR/ready, then sleeps; with echo, answers every byte the first
 * connection brings with the same byte. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096];
	if (argc < 4)
		return 2;
	int n = atoi(argv[3]), first = -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < n; i++) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a))
			return 3;
		if (first < 0)
			first = s;
	}
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	if (argc > 4 && !strcmp(argv[4], "echo")) {
		char c;
		while (read(first, &c, 1) == 1)
			if (write(first, &c, 1) != 1)
				return 4;
		return 5;
	}
	for (;;)
		pause();
}
