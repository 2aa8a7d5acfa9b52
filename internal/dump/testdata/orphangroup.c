/* orphangroup DIR: a session leader (subreaper) whose child made a process
 * group of its own, forked a member into it and exited: the member stays in
 * the tree (reparented to the subreaper) in a group whose leader is gone.
 * Writes "member N\n" to DIR/info, then DIR/ready, and sleeps. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char p[4096];
	int fds[2];
	pid_t a, b;
	FILE *f;

	if (argc < 2 || (getsid(0) != getpid() && setsid() < 0) || prctl(PR_SET_CHILD_SUBREAPER, 1) || pipe(fds))
		return 2;
	a = fork();
	if (a == 0) {
		setpgid(0, 0);
		b = fork();
		if (b == 0) {
			for (;;)
				pause();
		}
		if (write(fds[1], &b, sizeof b) != sizeof b)
			_exit(3);
		_exit(0);
	}
	if (read(fds[0], &b, sizeof b) != sizeof b || waitpid(a, NULL, 0) != a)
		return 3;
	snprintf(p, sizeof p, "%s/info", argv[1]);
	f = fopen(p, "w");
	fprintf(f, "member %d\ngroup %d\n", b, a);
	fclose(f);
	snprintf(p, sizeof p, "%s/ready", argv[1]);
	fclose(fopen(p, "w"));
	for (;;)
		pause();
}
