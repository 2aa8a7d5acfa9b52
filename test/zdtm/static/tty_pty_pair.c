// zdtm: desc: pseudo-terminal pairs inside the tree: the root holds the master of one, a child leads a session with its slave as controlling terminal (ECHO off, 33x101 window, an fd on /dev/tty as shells keep) and a grandchild in the foreground group reads it; a second pair stays locked with only its master open; after restore the indexes, termios, window size, lock, controlling terminal and foreground group are as they were, and a line written to the master is read by the grandchild, whose answer comes back through the master
// zdtm: modes: restore snapshot twice predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

static int master, locked;
static int idx, lidx;

static void job(void)
{
	char line[64];
	for (;;) {
		int n = read(0, line, sizeof line - 1);
		if (n <= 0)
			_exit(3);
		line[n] = 0;
		if (strncmp(line, "ping", 4))
			continue;
		struct termios t;
		struct winsize w;
		char want[32];
		tcgetattr(0, &t);
		ioctl(0, TIOCGWINSZ, &w);
		snprintf(want, sizeof want, "/dev/pts/%d", idx);
		int fd = open("/dev/tty", O_RDWR);
		const char *name = ttyname(0);
		int bad = (t.c_lflag & ECHO ? 1 : 0) | (w.ws_row != 33 || w.ws_col != 101 ? 2 : 0) |
			  (tcgetpgrp(0) != getpgrp() ? 4 : 0) | (!name || strcmp(name, want) ? 8 : 0) | (fd < 0 ? 16 : 0);
		if (bad)
			dprintf(1, "pong bad (%s%s%s%s%s)\n", bad & 1 ? " echo on" : "", bad & 2 ? " window size" : "",
				bad & 4 ? " not in the foreground" : "", bad & 8 ? " other terminal" : "", bad & 16 ? " no /dev/tty" : "");
		else
			dprintf(1, "pong ok\n");
	}
}

int main(int argc, char **argv)
{
	int ready[2], status;
	char c;

	zt_init(argc, argv);
	master = posix_openpt(O_RDWR | O_NOCTTY);
	locked = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || locked < 0 || grantpt(master) || unlockpt(master))
		zt_skip("no pseudo-terminals: %m");
	if (ioctl(master, TIOCGPTN, &idx) || ioctl(locked, TIOCGPTN, &lidx))
		return 1;
	struct winsize ws = {.ws_row = 33, .ws_col = 101};
	ioctl(master, TIOCSWINSZ, &ws);
	if (pipe(ready))
		return 1;
	pid_t leader = fork();
	if (leader == 0) {
		setsid();
		int s = open(ptsname(master), O_RDWR);
		if (s < 0 || ioctl(s, TIOCSCTTY, 0))
			_exit(2);
		dup2(s, 0);
		dup2(s, 1);
		close(s);
		/* as interactive shells do, for job control */
		int tt = open("/dev/tty", O_RDWR);
		if (tt < 0 || dup2(tt, 10) != 10)
			_exit(2);
		close(tt);
		struct termios t;
		tcgetattr(0, &t);
		t.c_lflag &= ~ECHO;
		tcsetattr(0, TCSANOW, &t);
		signal(SIGTTOU, SIG_IGN);
		pid_t j = fork();
		if (j == 0) {
			setpgid(0, 0);
			tcsetpgrp(0, getpid());
			if (write(ready[1], "r", 1) != 1)
				_exit(2);
			job();
		}
		for (;;)
			pause();
	}
	if (read(ready[0], &c, 1) != 1)
		zt_fail("the job never got ready");
	zt_ready();
	zt_wait_term();
	int n, lk = 0;
	if (ioctl(master, TIOCGPTN, &n) || n != idx)
		zt_fail("master index %d, want %d", n, idx);
	if (ioctl(locked, TIOCGPTN, &n) || n != lidx)
		zt_fail("locked master index %d, want %d", n, lidx);
	if (ioctl(locked, TIOCGPTLCK, &lk) || !lk)
		zt_fail("the second pair is not locked any more");
	if (write(master, "ping\n", 5) != 5)
		zt_fail("write to the master: %m");
	char buf[128] = {0};
	size_t got = 0;
	struct pollfd p = {.fd = master, .events = POLLIN};
	while (got < sizeof buf - 1 && !strstr(buf, "\n") && poll(&p, 1, 10000) == 1) {
		int r = read(master, buf + got, sizeof buf - 1 - got);
		if (r <= 0)
			break;
		got += r;
	}
	if (!strstr(buf, "pong ok"))
		zt_fail("the job answered %s", buf);
	kill(-leader, SIGKILL);
	waitpid(leader, &status, 0);
	return zt_finish();
}
