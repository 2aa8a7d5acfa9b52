// zdtm: desc: a pipe shared by parent and child: the child wrote data the parent has not read; after restore the child writes more and exits, the parent reads all of it and then EOF
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	int p[2], sync[2];
	pid_t child;
	unsigned char buf[8192];
	char c;

	zt_init(argc, argv);
	if (pipe(p) || pipe(sync))
		return 1;
	child = fork();
	if (!child) {
		close(p[0]);
		close(sync[0]);
		zt_pattern_fill(buf, 3000, 61);
		if (write(p[1], buf, 3000) != 3000 || write(sync[1], "k", 1) != 1)
			_exit(2);
		close(sync[1]);
		zt_wait_term();
		zt_pattern_fill(buf, 5000, 62);
		_exit(write(p[1], buf, 5000) != 5000);
	}
	close(p[1]);
	close(sync[1]);
	if (read(sync[0], &c, 1) != 1)
		zt_fail("child died in setup");
	close(sync[0]);
	zt_ready();
	zt_wait_term();
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("child ended with status 0x%x", st);
	size_t off = 0;
	ssize_t n;
	while (off < sizeof(buf) && (n = read(p[0], buf + off, sizeof(buf) - off)) > 0)
		off += n;
	if (off != 8000)
		zt_fail("read %zu bytes from the pipe, want 8000", off);
	else {
		zt_pattern_expect("data written before checkpoint", buf, 3000, 61);
		zt_pattern_expect("data written after restore", buf + 3000, 5000, 62);
	}
	return zt_finish();
}
