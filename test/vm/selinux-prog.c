/* VM test target: a memory pattern checked every 50 ms, "ok N" or "BAD N"
 * appended to the log file given as argv[1]. Built static for the VM. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t n = 4 << 20;
	unsigned char *p = malloc(n);
	if (argc < 2 || !p)
		return 2;
	for (size_t i = 0; i < n; i++)
		p[i] = i * 7;
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0666);
	for (unsigned long t = 0;; t++) {
		int ok = 1;
		for (size_t i = 0; i < n; i += 4093)
			if (p[i] != (unsigned char)(i * 7))
				ok = 0;
		char b[64];
		int l = snprintf(b, sizeof b, "%s %lu\n", ok ? "ok" : "BAD", t);
		if (write(fd, b, l) != l)
			return 3;
		struct timespec ts = { 0, 50000000 };
		nanosleep(&ts, 0);
	}
}
