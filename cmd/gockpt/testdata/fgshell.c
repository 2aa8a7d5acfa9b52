/* A tiny job-control shell for real programs, on the terminal it is
 * started on (its stdin; it leads the session): it runs JOB... in the
 * foreground, in a process group of its own, and writes the job's PID to
 * DIR/job. When the job dies (dump kills it), it takes the terminal back,
 * turns ECHO and ICANON on again as shells do, says "job ended (STATUS)",
 * runs RESTORE... (gockpt restore --shell-job) in the foreground and exits
 * with its status. With -w it first waits for a line typed on the terminal,
 * as a user types the restore command once gockpt dump has returned.
 * Usage: fgshell [-w] DIR JOB... -- RESTORE... */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void foreground(pid_t pgid) {
	setpgid(pgid == getpid() ? 0 : pgid, pgid);
	tcsetpgrp(0, pgid);
}

/* spawn runs argv in the foreground in a process group of its own. */
static pid_t spawn(char **argv) {
	pid_t p = fork();
	if (p == 0) {
		foreground(getpid()); /* SIGTTOU still ignored, as the shell's */
		signal(SIGTTOU, SIG_DFL);
		signal(SIGTTIN, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	foreground(p);
	return p;
}

static void take_terminal_back(void) {
	struct termios t;
	tcsetpgrp(0, getpgrp());
	tcgetattr(0, &t);
	t.c_lflag |= ECHO | ICANON;
	tcsetattr(0, TCSANOW, &t);
}

int main(int argc, char **argv) {
	int st, sep = 0, wait_line = 0;
	char path[4096], tmp[4096];
	if (argc > 1 && strcmp(argv[1], "-w") == 0) {
		wait_line = 1;
		argv++;
		argc--;
	}
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) sep = i;
	if (argc < 3 || sep < 3 || sep + 1 >= argc) return 2;
	argv[sep] = NULL;
	signal(SIGTTOU, SIG_IGN);
	signal(SIGTTIN, SIG_IGN);
	pid_t j = spawn(argv + 2);
	snprintf(tmp, sizeof tmp, "%s/job.tmp", argv[1]);
	snprintf(path, sizeof path, "%s/job", argv[1]);
	FILE *f = fopen(tmp, "w");
	if (!f) return 2;
	fprintf(f, "%d\n", j);
	fclose(f);
	rename(tmp, path); /* the test never reads half a PID */
	waitpid(j, &st, 0);
	take_terminal_back();
	dprintf(1, "job ended (%#x)\n", st);
	if (wait_line) {
		char c;
		dprintf(1, "$ ");
		do {
			if (read(0, &c, 1) != 1) return 2;
		} while (c != '\n');
	}
	pid_t r = spawn(argv + sep + 1);
	waitpid(r, &st, 0);
	take_terminal_back();
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
