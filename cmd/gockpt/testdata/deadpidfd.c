/* deadpidfd DIR: holds, as fd 10, a pidfd of a child that exited with 7
 * and was reaped; creates DIR/ready and waits. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096];
	pid_t kid = fork();

	if (kid == 0)
		_exit(7);
	int fd = syscall(SYS_pidfd_open, kid, 0);
	if (fd < 0 || dup2(fd, 10) != 10 || waitpid(kid, NULL, 0) != kid)
		return 3;
	close(fd);
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	for (;;)
		pause();
}
