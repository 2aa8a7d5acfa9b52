// zdtm: desc: audit login uid: the root task sets /proc/self/loginuid to 4242, its child then sets 4343 (both need CAP_AUDIT_CONTROL); each reads its own back after restore
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/wait.h>

static int set_luid(unsigned v)
{
	char buf[16];
	int fd = open("/proc/self/loginuid", O_WRONLY);
	int n = snprintf(buf, sizeof(buf), "%u", v);

	if (fd < 0)
		return -1;
	if (write(fd, buf, n) != n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static unsigned get_luid(void)
{
	char buf[32];

	if (zt_read_file("/proc/self/loginuid", buf, sizeof(buf)) < 0)
		return 0;
	return strtoul(buf, NULL, 10);
}

int main(int argc, char **argv)
{
	int ready[2];
	char c;

	zt_init(argc, argv);
	if (pipe(ready))
		return 1;
	if (set_luid(4242)) {
		zt_fail("cannot set loginuid 4242");
		return zt_finish();
	}
	pid_t child = fork();
	if (!child) {
		close(ready[0]);
		if (set_luid(4343))
			_exit(3);
		if (write(ready[1], "c", 1) != 1)
			_exit(2);
		close(ready[1]);
		zt_wait_term();
		unsigned v = get_luid();
		if (v != 4343) {
			dprintf(1, "FAIL: child loginuid %u, want 4343\n", v);
			_exit(1);
		}
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child could not set loginuid 4343");
	close(ready[0]);
	zt_ready();
	zt_wait_term();
	unsigned v = get_luid();
	if (v != 4242)
		zt_fail("root loginuid %u, want 4242", v);
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		zt_fail("child: loginuid differs (status 0x%x)", st);
	return zt_finish();
}
