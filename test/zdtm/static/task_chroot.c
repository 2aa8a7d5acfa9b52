// zdtm: desc: a chrooted child (root in a directory of the test, cwd inside it, an fd on a file inside) and its child born inside the chroot: after restore both have the same root, cwd and files, and "/x" resolves inside the chroot
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int bad;

#define CFAIL(...)                            \
	do {                                  \
		dprintf(1, "FAIL: " __VA_ARGS__); \
		bad = 1;                      \
	} while (0)

/* What a task inside the chroot checks: cwd, its fd, a path from "/". */
static void check_inside(const char *who, int fd)
{
	char buf[64], cwd[PATH_MAX];
	int x;

	if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/sub"))
		CFAIL("%s: cwd is %s, want /sub\n", who, getcwd(cwd, sizeof(cwd)) ? cwd : "?");
	if (pread(fd, buf, 8, 0) != 8 || memcmp(buf, "jailed x", 8))
		CFAIL("%s: fd %d does not read the file inside the chroot\n", who, fd);
	if (lseek(fd, 0, SEEK_CUR) != 3)
		CFAIL("%s: fd %d offset %ld, want 3\n", who, fd, (long)lseek(fd, 0, SEEK_CUR));
	x = open("/x", O_RDONLY);
	if (x < 0 || read(x, buf, 8) != 8 || memcmp(buf, "jailed x", 8))
		CFAIL("%s: open(\"/x\") does not reach the file inside the chroot\n", who);
	if (x >= 0)
		close(x);
	if (access("/outside", F_OK) == 0)
		CFAIL("%s: /outside is visible: not chrooted\n", who);
	x = open("here", O_RDONLY);
	if (x < 0)
		CFAIL("%s: open(\"here\") in the cwd: %m\n", who);
	else
		close(x);
}

static int check_root(pid_t pid, const char *want)
{
	char link[64], got[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/%d/root", pid);
	n = readlink(link, got, sizeof(got) - 1);
	if (n < 0) {
		zt_fail("readlink %s: %m", link);
		return 1;
	}
	got[n] = 0;
	if (strcmp(got, want)) {
		zt_fail("task %d root is %s, want %s", pid, got, want);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char jail[PATH_MAX], cwd[PATH_MAX];
	int p[2], fd, st;
	pid_t child, grandchild;

	zt_init(argc, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		return 1;
	snprintf(jail, sizeof(jail), "%s/jail", cwd);
	mkdir("jail", 0755);
	mkdir("jail/sub", 0755);
	fd = open("jail/x", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "jailed x", 8) != 8)
		return 1;
	close(fd);
	close(open("jail/sub/here", O_WRONLY | O_CREAT, 0644));
	close(open("outside", O_WRONLY | O_CREAT, 0644));
	if (pipe(p))
		return 1;
	child = fork();
	if (!child) {
		close(p[0]);
		if (chroot(jail) || chdir("/sub")) {
			dprintf(1, "FAIL: chroot %s: %m\n", jail);
			_exit(1);
		}
		fd = open("/x", O_RDONLY);
		if (fd < 0 || lseek(fd, 3, SEEK_SET) != 3)
			_exit(1);
		grandchild = fork();
		if (!grandchild) {
			close(p[1]);
			zt_wait_term();
			check_inside("grandchild", fd);
			_exit(bad);
		}
		if (write(p[1], &grandchild, sizeof(grandchild)) != sizeof(grandchild))
			_exit(1);
		close(p[1]);
		zt_wait_term();
		check_inside("child", fd);
		kill(grandchild, SIGTERM);
		if (waitpid(grandchild, &st, 0) != grandchild || !WIFEXITED(st) || WEXITSTATUS(st))
			CFAIL("grandchild exited with status 0x%x\n", st);
		_exit(bad);
	}
	close(p[1]);
	if (read(p[0], &grandchild, sizeof(grandchild)) != sizeof(grandchild))
		zt_fail("chrooted child died during setup");
	close(p[0]);
	zt_ready();
	zt_wait_term();
	check_root(child, jail);
	check_root(grandchild, jail);
	check_root(getpid(), "/");
	kill(child, SIGTERM);
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("chrooted child exited with status 0x%x", st);
	return zt_finish();
}
