// zdtm: desc: the whole tree in one UTS namespace of its own: the root unshares it and names it, a child inherits it; host and domain names are checked in both after restore
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static const char host[] = "zdtm-root-uts", domain[] = "zdtm-root-dom";

static void check(const char *who)
{
	struct utsname u;
	uname(&u);
	if (strcmp(u.nodename, host) || strcmp(u.domainname, domain))
		zt_fail("%s: names %s/%s, want %s/%s", who, u.nodename, u.domainname, host, domain);
}

int main(int argc, char **argv)
{
	int p[2], done[2], st;
	char c;

	zt_init(argc, argv);
	if (unshare(CLONE_NEWUTS))
		zt_fail("unshare: %m");
	if (sethostname(host, strlen(host)) || setdomainname(domain, strlen(domain)))
		zt_fail("set names: %m");
	if (pipe(p) || pipe(done))
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(p[1]);
		close(done[0]);
		close(done[1]); /* set up: the parent reads EOF */
		/* wait until the parent says check, after restore */
		while (read(p[0], &c, 1) != 1)
			;
		check("child");
		_exit(zt_failures() ? 1 : 0);
	}
	close(p[0]);
	close(done[1]);
	/* The tree is ready once the child holds only its own fds. */
	while (read(done[0], &c, 1) > 0)
		;
	close(done[0]);
	zt_ready();
	zt_wait_term();
	check("root");
	if (write(p[1], "x", 1) != 1)
		zt_fail("tell child: %m");
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("child found its names wrong (status 0x%x)", st);
	return zt_finish();
}
