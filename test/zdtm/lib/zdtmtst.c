#define _GNU_SOURCE
#include "zdtmtst.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

volatile sig_atomic_t zt_stop;
const char *zt_pidfile;

static int ready_fd = -1;
static int failures;

static void on_term(int sig)
{
	(void)sig;
	zt_stop = 1;
	syscall(SYS_futex, &zt_stop, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s -p PIDFILE\n", argv0);
	exit(2);
}

void zt_init(int argc, char **argv)
{
	int opt, p[2];
	pid_t pid;
	char c;

	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p')
			usage(argv[0]);
		zt_pidfile = optarg;
	}
	if (!zt_pidfile)
		usage(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	setvbuf(stderr, NULL, _IONBF, 0);

	if (pipe2(p, O_CLOEXEC)) {
		perror("pipe2");
		exit(2);
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid > 0) {
		int status;

		close(p[1]);
		if (read(p[0], &c, 1) == 1)
			_exit(0);
		/* The child died before it was ready: report how. */
		if (waitpid(pid, &status, 0) == pid) {
			if (WIFEXITED(status) && WEXITSTATUS(status) == ZT_SKIP_STATUS)
				_exit(ZT_SKIP_STATUS);
			fprintf(stderr, "FAIL: test root exited before ready (status 0x%x)\n", status);
		}
		_exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() < 0) {
		perror("setsid");
		exit(2);
	}
	struct sigaction sa = { .sa_handler = on_term };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL)) {
		perror("sigaction SIGTERM");
		exit(2);
	}
}

void zt_ready(void)
{
	char tmp[4096], buf[32];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", zt_pidfile);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror("open pid file");
		exit(2);
	}
	n = snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (write(fd, buf, n) != n || close(fd) || rename(tmp, zt_pidfile)) {
		perror("write pid file");
		exit(2);
	}
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			perror("signal ready");
		close(ready_fd);
		ready_fd = -1;
	}
}

void zt_wait_term(void)
{
	while (!zt_stop)
		syscall(SYS_futex, &zt_stop, FUTEX_WAIT, 0, NULL, NULL, 0);
}

void zt_fail(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	failures++;
	dprintf(1, "FAIL: %s\n", buf);
}

void zt_log(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	dprintf(1, "# %s\n", buf);
}

int zt_failures(void)
{
	return failures;
}

int zt_finish(void)
{
	if (failures)
		return 1;
	dprintf(1, "PASS\n");
	return 0;
}

static uint32_t next(uint32_t *s)
{
	/* xorshift32: cheap, and every seed gives a different stream. */
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

void zt_pattern_fill(void *buf, size_t len, uint32_t seed)
{
	unsigned char *p = buf;
	uint32_t s = seed | 1;

	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(next(&s) >> 11);
}

long zt_pattern_check(const void *buf, size_t len, uint32_t seed)
{
	const unsigned char *p = buf;
	uint32_t s = seed | 1;

	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)(next(&s) >> 11))
			return (long)i;
	return -1;
}

int zt_pattern_expect(const char *what, const void *buf, size_t len, uint32_t seed)
{
	long off = zt_pattern_check(buf, len, seed);

	if (off < 0)
		return 0;
	zt_fail("%s: pattern differs at offset %ld of %zu (byte 0x%02x)", what, off, len,
		((const unsigned char *)buf)[off]);
	return -1;
}

long zt_read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	ssize_t r;

	if (fd < 0)
		return -1;
	while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	return (long)n;
}

int zt_status_field(const char *path, const char *key, char *out, size_t size)
{
	char buf[8192], *p, *e;
	size_t klen = strlen(key);

	if (zt_read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	for (p = buf; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, klen) || p[klen] != ':')
			continue;
		p += klen + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		e = strchr(p, '\n');
		if (!e)
			e = p + strlen(p);
		snprintf(out, size, "%.*s", (int)(e - p), p);
		return 0;
	}
	return -1;
}

void zt_skip(const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	printf("SKIP: ");
	errno = e; /* for %m */
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(ZT_SKIP_STATUS);
}
