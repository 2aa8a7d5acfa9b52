// zdtm: desc: oom_score_adj: 345 on the root task, 50 on a child (lowered from the 345 it inherits: root lacks CAP_SYS_RESOURCE here, so nothing goes below oom_score_adj_min); each reads its own back after restore
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/wait.h>

static int set_adj(int v)
{
	char buf[16];
	int fd = open("/proc/self/oom_score_adj", O_WRONLY);
	int n = snprintf(buf, sizeof(buf), "%d", v);

	if (fd < 0)
		return -1;
	if (write(fd, buf, n) != n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int get_adj(void)
{
	char buf[32];

	if (zt_read_file("/proc/self/oom_score_adj", buf, sizeof(buf)) < 0)
		return -10000;
	return atoi(buf);
}

int main(int argc, char **argv)
{
	int ready[2];
	char c;

	zt_init(argc, argv);
	if (pipe(ready))
		return 1;
	if (set_adj(345)) {
		zt_fail("cannot set oom_score_adj 345");
		return zt_finish();
	}
	pid_t child = fork();
	if (!child) {
		close(ready[0]);
		if (set_adj(50))
			_exit(3);
		if (write(ready[1], "c", 1) != 1)
			_exit(2);
		close(ready[1]);
		zt_wait_term();
		int v = get_adj();
		if (v != 50) {
			dprintf(1, "FAIL: child oom_score_adj %d, want 50\n", v);
			_exit(1);
		}
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child could not set oom_score_adj 50");
	close(ready[0]);
	zt_ready();
	zt_wait_term();
	int v = get_adj();
	if (v != 345)
		zt_fail("root oom_score_adj %d, want 345", v);
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		zt_fail("child: oom_score_adj differs (status 0x%x)", st);
	return zt_finish();
}
