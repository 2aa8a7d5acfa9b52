/* tcphowto_client is the client of CRIU's tcp-howto ping-pong, run as a
 * shell's job on its terminal: it connects to 127.0.0.1:PORT, then sends
 * a counter and reads the answer back, every 5 ms, printing "pong N" on
 * its terminal (stdout) and keeping the last N in DIR/count. DIR/error
 * says what went wrong (then it exits 1).
 * Usage: tcphowto_client DIR PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[4096];

/* put writes DIR/name whole: the test never reads half of it. */
static void put(const char *name, const char *s)
{
	char p[4200], tmp[4300];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s.tmp", p);
	FILE *f = fopen(tmp, "w");
	if (!f)
		exit(2);
	fputs(s, f);
	fclose(f);
	rename(tmp, p);
}

static void die(const char *what)
{
	char m[256];
	snprintf(m, sizeof m, "%s: %s", what, errno ? strerror(errno) : "no error number");
	put("error", m);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	snprintf(dir, sizeof dir, "%s", argv[1]);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a))
		die("connect");
	put("ready", "");
	char buf[32], got[32], line[64];
	for (unsigned long i = 1;; i++) {
		int n = snprintf(buf, sizeof buf, "%016lu", i);
		if (write(s, buf, n) != n)
			die("write");
		int have = 0;
		while (have < n) {
			ssize_t r = read(s, got + have, n - have);
			if (r == 0) {
				errno = 0;
				die("the server closed the connection");
			}
			if (r < 0) {
				if (errno == EINTR)
					continue;
				die("read");
			}
			have += r;
		}
		if (memcmp(buf, got, n)) {
			errno = 0;
			die("the answer differs");
		}
		int l = snprintf(line, sizeof line, "pong %lu\n", i);
		if (write(1, line, l) != l)
			die("write to the terminal");
		put("count", buf);
		usleep(5000);
	}
}
