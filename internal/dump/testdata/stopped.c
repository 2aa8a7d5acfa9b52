/* stopped DIR SIG: a parent and a child that stops itself with signal SIG
 * (in a process group of its own, so that the terminal stop signals stop
 * it too). The parent writes the child's PID to DIR/child and sleeps. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096], final[4096], text[32];
	pid_t child;
	int fd;

	if (argc != 3)
		return 1;
	child = fork();
	if (child == 0) {
		setpgid(0, 0);
		raise(atoi(argv[2]));
		for (;;)
			pause();
	}
	snprintf(path, sizeof(path), "%s/child.tmp", argv[1]);
	snprintf(final, sizeof(final), "%s/child", argv[1]);
	snprintf(text, sizeof(text), "%d\n", child);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return 2;
	close(fd);
	if (rename(path, final))
		return 3;
	for (;;)
		pause();
}
