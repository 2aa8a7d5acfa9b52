/* Holds one fd of the kind named by argv[2] open, writes DIR/ready, sleeps.
 * Usage: holdfd DIR socket|eventfd|epoll|timerfd|inotify|signalfd|deleted */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char path[4096];
	int fd = -1;
	if (argc < 3) return 2;
	if (!strcmp(argv[2], "socket")) fd = socket(AF_UNIX, SOCK_STREAM, 0);
	else if (!strcmp(argv[2], "eventfd")) fd = eventfd(0, 0);
	else if (!strcmp(argv[2], "epoll")) fd = epoll_create1(0);
	else if (!strcmp(argv[2], "timerfd")) fd = timerfd_create(CLOCK_MONOTONIC, 0);
	else if (!strcmp(argv[2], "inotify")) fd = inotify_init1(0);
	else if (!strcmp(argv[2], "signalfd")) {
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, SIGUSR1);
		fd = signalfd(-1, &m, 0);
	}
	else if (!strcmp(argv[2], "deleted")) {
		/* a deleted file of argv[3] bytes */
		long n = argc > 3 ? atol(argv[3]) : 4096;
		snprintf(path, sizeof path, "%s/gone", argv[1]);
		fd = open(path, O_RDWR | O_CREAT, 0600);
		for (long i = 0; i < n; i++) { char c = 'a' + i % 26; if (write(fd, &c, 1) != 1) return 4; }
		lseek(fd, 7, SEEK_SET);
		unlink(path);
	}
	if (fd < 0) return 3;
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	for (;;) pause();
}
