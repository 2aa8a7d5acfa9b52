/* vforkparent DIR: a parent blocked in vfork (state D) whose child neither
 * execs nor exits until it is killed. The child writes DIR/info ("parent P"
 * and "child C" lines) and DIR/ready; the parent, once its child is gone,
 * writes DIR/resumed and sleeps. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		_exit(2);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		_exit(3);
	close(fd);
}

int main(int argc, char **argv)
{
	pid_t parent = getpid(), child;
	char info[128];

	if (argc != 2)
		return 1;
	child = vfork();
	if (child == 0) {
		/* Shares the parent's memory: only syscalls and the stack. */
		snprintf(info, sizeof(info), "parent %d\nchild %d\n", parent, getpid());
		put(argv[1], "info", info);
		put(argv[1], "ready", "");
		for (;;)
			pause();
	}
	put(argv[1], "resumed", "");
	for (;;)
		pause();
}
