/* A tiny shell, on the terminal it is started on (its stdin; it leads the
 * session): it runs a job in the foreground, in a process group of its
 * own; when the job dies (dump kills it), it takes the terminal back, turns
 * ECHO and ICANON on again as shells do, and runs argv[2...] (gockpt
 * restore --shell-job) in the foreground, exiting with its status.
 * The job turns ECHO and ICANON off, writes its PID to DIR/job and says
 * "ready"; then each "p" it reads is answered "pong ok" if its terminal
 * modes are still off and it is the terminal's foreground group ("pong
 * bad" otherwise), and "q" ends it with status 0.
 * Usage: shelljob DIR PROGRAM ARGS... */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void foreground(pid_t pgid) {
	setpgid(pgid == getpid() ? 0 : pgid, pgid);
	tcsetpgrp(0, pgid);
}

static void job(const char *dir) {
	struct termios t;
	char path[4096], c;
	foreground(getpid()); /* SIGTTOU still ignored: the shell may not have yet */
	signal(SIGTTOU, SIG_DFL);
	signal(SIGTTIN, SIG_DFL);
	tcgetattr(0, &t);
	t.c_lflag &= ~(ECHO | ICANON);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	tcsetattr(0, TCSANOW, &t);
	snprintf(path, sizeof path, "%s/job", dir);
	FILE *f = fopen(path, "w");
	fprintf(f, "%d\n", getpid());
	fclose(f);
	dprintf(1, "ready\n");
	for (;;) {
		if (read(0, &c, 1) != 1) _exit(3);
		if (c == 'q') _exit(0);
		if (c == 'p') {
			struct termios n;
			tcgetattr(0, &n);
			int ok = !(n.c_lflag & (ECHO | ICANON)) && tcgetpgrp(0) == getpgrp();
			dprintf(1, "pong %s\n", ok ? "ok" : "bad");
		}
	}
}

int main(int argc, char **argv) {
	int st;
	if (argc < 3) return 2;
	signal(SIGTTOU, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	pid_t j = fork();
	if (j == 0) job(argv[1]);
	foreground(j);
	waitpid(j, &st, 0);
	tcsetpgrp(0, getpgrp());
	struct termios t;
	tcgetattr(0, &t);
	t.c_lflag |= ECHO | ICANON;
	tcsetattr(0, TCSANOW, &t);
	dprintf(1, "job ended (%#x)\n", st);
	pid_t r = fork();
	if (r == 0) {
		foreground(getpid());
		signal(SIGTTOU, SIG_DFL);
		signal(SIGTTIN, SIG_DFL);
		execv(argv[2], argv + 2);
		_exit(127);
	}
	foreground(r);
	waitpid(r, &st, 0);
	tcsetpgrp(0, getpgrp());
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
