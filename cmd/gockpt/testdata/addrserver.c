/* addrserver listens on ADDR (IPv4, a port the kernel picks), writes the
 * port to DIR/port and then DIR/ready, and answers each connection it
 * accepts with "hello from PID\n". It closes the connection once the
 * client has (so the TIME-WAIT is the client's: one of the server's,
 * without SO_REUSEADDR, would keep the port from being bound again for a
 * minute), then writes how many it served to DIR/served.
 * Usage: addrserver DIR ADDR */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096], msg[64];
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t l = sizeof a;
	if (argc < 3 || inet_pton(AF_INET, argv[2], &a.sin_addr) != 1)
		return 2;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 5) || getsockname(fd, (struct sockaddr *)&a, &l))
		return 3;
	snprintf(path, sizeof path, "%s/port", argv[1]);
	FILE *f = fopen(path, "w");
	if (!f)
		return 4;
	fprintf(f, "%d\n", ntohs(a.sin_port));
	fclose(f);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	int n = snprintf(msg, sizeof msg, "hello from %d\n", getpid());
	char served[4096], tmp[4200], b[64];
	snprintf(served, sizeof served, "%s/served", argv[1]);
	snprintf(tmp, sizeof tmp, "%s.tmp", served);
	for (unsigned long i = 1;; i++) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			continue;
		if (write(c, msg, n) == n)
			while (read(c, b, sizeof b) > 0)
				;
		close(c);
		f = fopen(tmp, "w");
		if (!f)
			return 4;
		fprintf(f, "%lu\n", i);
		fclose(f);
		rename(tmp, served);
	}
}
