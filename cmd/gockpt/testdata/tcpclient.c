/* tcpclient DIR PORT [thread] connects to 127.0.0.1:PORT and sends a
 * counter, reading each echo back and checking it, every 2 ms (with
 * thread, from a second thread while the main one waits). DIR/count holds
 * the last echo; DIR/error says what went wrong (then it exits 1). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[4096];

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

static void *talk(void *arg);

static void die(const char *what)
{
	char m[256];
	snprintf(m, sizeof m, "%s: %s", what, strerror(errno));
	put("error", m);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	snprintf(dir, sizeof dir, "%s", argv[1]);
	signal(SIGPIPE, SIG_IGN); /* a write on a closed socket says EPIPE */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(s, (struct sockaddr *)&a, sizeof a))
		die("connect");
	put("ready", "");
	if (argc > 3 && !strcmp(argv[3], "thread")) {
		pthread_t t;
		if (pthread_create(&t, NULL, talk, (void *)(long)s))
			return 3;
		pthread_join(t, NULL);
		return 0;
	}
	talk((void *)(long)s);
	return 0;
}

static void *talk(void *arg)
{
	int s = (int)(long)arg;
	char buf[32], got[32];
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
			die("the echo differs");
		}
		put("count", buf);
		usleep(2000);
	}
	return NULL;
}
