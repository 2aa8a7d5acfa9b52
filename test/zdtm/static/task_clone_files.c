// zdtm: desc: a child made with clone(CLONE_FILES) without CLONE_THREAD shares the fd table of the root (kcmp KCMP_FILES equal; an fd opened in one appears in the other), a forked child does not
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int cmd[2], ans[2];
static char stack[64 << 10] __attribute__((aligned(16)));

static int same_files(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_FILES, 0, 0) == 0;
}

static int points_at(int fd, const char *name)
{
	char link[64], got[PATH_MAX], cwd[PATH_MAX], want[PATH_MAX + 64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, got, sizeof(got) - 1);
	if (n < 0 || !getcwd(cwd, sizeof(cwd)))
		return 0;
	got[n] = 0;
	snprintf(want, sizeof(want), "%s/%s", cwd, name);
	return !strcmp(got, want);
}

/* The sharing child: told an fd the root opened, checks it is there, opens one of its own. */
static int sharer(void *arg)
{
	int fd, mine;

	(void)arg;
	if (read(cmd[0], &fd, sizeof(fd)) != sizeof(fd))
		_exit(2);
	mine = open("from-child", O_RDONLY | O_CREAT, 0644);
	/* Answer in any case: the root waits for it. */
	if (write(ans[1], &mine, sizeof(mine)) != sizeof(mine))
		_exit(2);
	if (fcntl(fd, F_GETFD) < 0 || !points_at(fd, "from-root")) {
		dprintf(1, "FAIL: sharing child: fd %d the root opened is not in its table\n", fd);
		_exit(1);
	}
	_exit(0);
}

int main(int argc, char **argv)
{
	pid_t sharer_pid, forked, me;
	int fd, childfd, st;

	zt_init(argc, argv);
	me = getpid();
	if (pipe(cmd) || pipe(ans))
		return 1;
	sharer_pid = clone(sharer, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	if (sharer_pid < 0)
		return 1;
	forked = fork();
	if (!forked) {
		zt_wait_term();
		_exit(0);
	}
	if (!same_files(me, sharer_pid) || same_files(me, forked))
		zt_fail("setup: the fd tables are not as made");
	zt_ready();
	zt_wait_term();
	if (!same_files(me, sharer_pid))
		zt_fail("the clone(CLONE_FILES) child no longer shares the root's fd table");
	if (same_files(me, forked))
		zt_fail("the forked child shares the root's fd table");
	fd = open("from-root", O_RDONLY | O_CREAT, 0644);
	if (write(cmd[1], &fd, sizeof(fd)) != sizeof(fd) || read(ans[0], &childfd, sizeof(childfd)) != sizeof(childfd))
		zt_fail("no answer from the sharing child");
	else if (fcntl(childfd, F_GETFD) < 0 || !points_at(childfd, "from-child"))
		zt_fail("fd %d the sharing child opened is not in the root's table", childfd);
	if (waitpid(sharer_pid, &st, 0) != sharer_pid || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("sharing child exited with status 0x%x", st);
	kill(forked, SIGTERM);
	if (waitpid(forked, &st, 0) != forked || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("forked child exited with status 0x%x", st);
	return zt_finish();
}
