/* UDP ping-pong client: udpping PORT STATE. Its socket is connected to
 * 127.0.0.1:PORT; it sends its counter n (from 1, as text) and waits for
 * n+1 (SO_RCVTIMEO 100 ms: without an answer it sends n again); on the
 * answer it writes n to STATE (a new file renamed over it, so a reader
 * never sees half a number), sleeps 10 ms and goes on with n+1. A stale
 * answer (to an n sent twice) is skipped; any other answer ends it with
 * status 3 and says why on stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms)
{
	struct timespec ts = {0, ms * 1000 * 1000};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	char tmp[4096], buf[64];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {0, 100 * 1000};
	unsigned long long n = 1;

	if (argc != 3)
		return 2;
	a.sin_port = htons(atoi(argv[1]));
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) || connect(fd, (struct sockaddr *)&a, sizeof a)) {
		perror("udpping: socket");
		return 2;
	}
	for (;;) {
		int len = snprintf(buf, sizeof buf, "%llu", n);
		if (send(fd, buf, len, 0) != len) {
			if (errno == EINTR || errno == ECONNREFUSED) {
				nap(10); /* the server may be away a moment: send again */
				continue;
			}
			perror("udpping: send");
			return 3;
		}
		int got = recv(fd, buf, sizeof buf - 1, 0);
		if (got < 0) {
			if (errno == ECONNREFUSED)
				nap(10);
			if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED)
				continue;
			perror("udpping: recv");
			return 3;
		}
		buf[got] = 0;
		unsigned long long m = strtoull(buf, NULL, 10);
		if (m <= n)
			continue; /* the answer to an n sent before */
		if (m != n + 1) {
			fprintf(stderr, "udpping: sent %llu, got %s\n", n, buf);
			return 3;
		}
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%llu\n", n) < 0 || fclose(f) || rename(tmp, argv[2])) {
			perror("udpping: state");
			return 3;
		}
		n++;
		nap(10);
	}
}
