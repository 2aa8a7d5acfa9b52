// zdtm: desc: UTS namespaces: the root unshares one and names it, a child stays in it, another child unshares a second one; host and domain names are checked in each after restore
// zdtm: modes: restore snapshot twice predump
// Not in the criu-* modes: CRIU 4.2 restores every task in the root task's
// namespaces and refuses a child in a UTS namespace of its own ("Can't
// restore sub-task in NS"), and does not dump one ("Can't dump nested uts
// namespace").
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

static void check(const char *who, const char *host, const char *domain)
{
	struct utsname u;
	uname(&u);
	if (strcmp(u.nodename, host) || strcmp(u.domainname, domain))
		zt_fail("%s: names %s/%s, want %s/%s", who, u.nodename, u.domainname, host, domain);
}

static pid_t child(const char *host, const char *domain, int unshare_it)
{
	int p[2];
	if (pipe(p))
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(p[1]);
		if (unshare_it) {
			unshare(CLONE_NEWUTS);
			sethostname(host, strlen(host));
			setdomainname(domain, strlen(domain));
		}
		/* wait until the parent says check, after restore */
		while (read(p[0], &c, 1) != 1)
			;
		check("child", host, domain);
		_exit(zt_failures() ? 1 : 0);
	}
	close(p[0]);
	return pid * 1000 + p[1]; /* pid and the pipe's write end, packed */
}

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	if (unshare(CLONE_NEWUTS))
		zt_fail("unshare: %m");
	sethostname("zdtm-uts", 8);
	setdomainname("zdtm-dom", 8);
	long a = child("zdtm-uts", "zdtm-dom", 0);
	long b = child("zdtm-uts-b", "zdtm-dom-b", 1);
	usleep(100000);
	zt_ready();
	zt_wait_term();
	check("root", "zdtm-uts", "zdtm-dom");
	long kids[] = { a, b };
	for (int i = 0; i < 2; i++) {
		int st;
		if (write(kids[i] % 1000, "x", 1) != 1)
			zt_fail("tell child: %m");
		waitpid(kids[i] / 1000, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			zt_fail("child %d found its names wrong", i);
	}
	return zt_finish();
}
