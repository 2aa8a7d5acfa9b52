// zdtm: desc: a child blocked in poll() with no timeout (the kernel continues such a poll through a restart block, which a restored task does not have) is still waiting after restore, and poll returns the pipe ready when the parent writes, not EINTR
// zdtm: modes: restore snapshot twice predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <poll.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
	int p[2], status;

	zt_init(argc, argv);
	if (pipe(p))
		return 1;
	pid_t kid = fork();
	if (kid == 0) {
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		int n = poll(&pf, 1, -1);
		if (n != 1 || !(pf.revents & POLLIN)) {
			dprintf(1, "FAIL: poll returned %d (%s), revents %#x\n", n, n < 0 ? strerror(errno) : "-", pf.revents);
			_exit(1);
		}
		_exit(0);
	}
	/* Wait until the child sleeps in poll. */
	char path[64], stat[512];
	snprintf(path, sizeof path, "/proc/%d/wchan", kid);
	for (int i = 0; i < 10000; i++) {
		if (zt_read_file(path, stat, sizeof stat) > 0 && strstr(stat, "poll"))
			break;
		usleep(1000);
	}
	zt_ready();
	zt_wait_term();
	if (write(p[1], "x", 1) != 1)
		zt_fail("write: %m");
	if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("the child's poll did not return the pipe ready (status %#x)", status);
	return zt_finish();
}
