/* Bench target: a tree of 8 tasks (the root and 7 children), each holding
 * 200 fds: with "mixed", regular files, pipes, unix socketpairs, eventfds,
 * an epoll set, signalfds, timerfds, memfds and inotify instances; with
 * "reg", 200 regular files. Writes DIR/ready once every task is set up,
 * then sleeps. Usage: mixedfds DIR mixed|reg */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

static char dir[4096];

static int regfile(int i) {
	char p[4200];
	snprintf(p, sizeof p, "%s/f%d", dir, i % 50);
	int fd = open(p, O_RDWR | O_CREAT, 0600);
	if (fd >= 0 && write(fd, "data", 4) != 4) return -1;
	return fd;
}

static void hold(int mixed) {
	int n = 0;
	if (!mixed) {
		for (; n < 200; n++)
			if (regfile(n) < 0) exit(3);
		return;
	}
	int ep = epoll_create1(0);
	n++;
	for (int i = 0; i < 40; i++, n++) regfile(i);
	for (int i = 0; i < 20; i++, n += 2) {
		int p[2];
		if (pipe(p) || write(p[1], "x", 1) != 1) exit(3);
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
		epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	}
	for (int i = 0; i < 20; i++, n += 2) {
		int s[2];
		if (socketpair(AF_UNIX, i % 2 ? SOCK_STREAM : SOCK_DGRAM, 0, s) || write(s[0], "y", 1) != 1) exit(3);
	}
	for (int i = 0; i < 20; i++, n++) eventfd(i, 0);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	for (int i = 0; i < 10; i++, n++) signalfd(-1, &m, 0);
	for (int i = 0; i < 10; i++, n++) {
		int t = timerfd_create(CLOCK_MONOTONIC, 0);
		struct itimerspec its = {.it_value = {.tv_sec = 1000 + i}};
		timerfd_settime(t, 0, &its, NULL);
	}
	for (int i = 0; i < 10; i++, n++) {
		int f = memfd_create("bench", 0);
		if (f < 0 || write(f, "memfd", 5) != 5) exit(3);
	}
	for (int i = 0; i < 10; i++, n++) {
		int in = inotify_init1(0);
		inotify_add_watch(in, dir, IN_DELETE_SELF);
	}
	for (; n < 200; n++) regfile(n);
}

int main(int argc, char **argv) {
	if (argc < 3) return 2;
	snprintf(dir, sizeof dir, "%s", argv[1]);
	int mixed = !strcmp(argv[2], "mixed");
	int p[2];
	if (pipe(p)) return 2;
	for (int i = 0; i < 7; i++) {
		if (fork() == 0) {
			close(p[0]);
			hold(mixed);
			if (write(p[1], "r", 1) != 1) _exit(2);
			for (;;) pause();
		}
	}
	close(p[1]);
	hold(mixed);
	char c;
	for (int i = 0; i < 7; i++)
		if (read(p[0], &c, 1) != 1) return 2;
	close(p[0]);
	char r[4200];
	snprintf(r, sizeof r, "%s/ready", dir);
	close(open(r, O_WRONLY | O_CREAT, 0600));
	for (;;) pause();
}
