/* A process that uses userfaultfd itself: it opens one at start, and when
 * DIR/go appears registers its own area with it, logging "register ok" or
 * "register failed: ERRNO" to DIR/log. Pre-dump must not stand in its way.
 * Usage: ownuffd DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char path[512];
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	struct uffdio_api api = {.api = UFFD_API};
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) return 1;
	size_t len = 64 * 4096;
	char *a = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(a, 1, len);
	snprintf(path, sizeof path, "%s/log", argv[1]);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	fclose(fopen(path, "w"));
	snprintf(path, sizeof path, "%s/go", argv[1]);
	struct timespec ts = {0, 2 * 1000 * 1000};
	while (access(path, F_OK)) nanosleep(&ts, 0);
	struct uffdio_register r = {.range = {.start = (unsigned long)a, .len = len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
	if (ioctl(uffd, UFFDIO_REGISTER, &r))
		fprintf(log, "register failed: %s\n", strerror(errno));
	else
		fprintf(log, "register ok\n");
	for (;;) pause();
}
