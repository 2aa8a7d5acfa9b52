// zdtm: desc: /proc files of tasks of the tree: the root holds its child's /proc/CHILD/status and /proc/CHILD/fd directory and its own /proc/self/status, the child holds its parent's /proc/PARENT/stat; after restore each reads its task's current state and points at the same path
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/wait.h>

/* The "Pid:" line of an open status file, read from its start. */
static int status_pid(int fd)
{
	char buf[4096], *p;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "\nPid:");
	return p ? atoi(p + 5) : -1;
}

static int link_is(int fd, const char *want)
{
	char link[64], got[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, got, sizeof(got) - 1);
	if (n < 0)
		return 0;
	got[n] = 0;
	if (strcmp(got, want)) {
		dprintf(1, "# fd %d points at %s, want %s\n", fd, got, want);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	char path[64], buf[256];
	int cstatus, cfd, self, p[2], st;
	pid_t child, me;

	zt_init(argc, argv);
	me = getpid();
	if (pipe(p))
		return 1;
	child = fork();
	if (!child) {
		int bad = 0, pstat;

		close(p[0]);
		snprintf(path, sizeof(path), "/proc/%d/stat", me);
		pstat = open(path, O_RDONLY);
		if (pstat < 0 || write(p[1], "r", 1) != 1)
			_exit(1);
		close(p[1]);
		zt_wait_term();
		ssize_t n = pread(pstat, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = 0;
		if (n <= 0 || atoi(buf) != me) {
			dprintf(1, "FAIL: child: parent's stat reads \"%.20s\", want pid %d\n", buf, me);
			bad = 1;
		}
		if (!link_is(pstat, path)) {
			dprintf(1, "FAIL: child: fd on %s points elsewhere\n", path);
			bad = 1;
		}
		_exit(bad);
	}
	close(p[1]);
	if (read(p[0], buf, 1) != 1)
		zt_fail("child died during setup");
	close(p[0]);
	snprintf(path, sizeof(path), "/proc/%d/status", child);
	cstatus = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "/proc/%d/fd", child);
	cfd = open(path, O_RDONLY); /* no O_DIRECTORY: CRIU 4.2 drops it on restore */
	self = open("/proc/self/status", O_RDONLY);
	if (cstatus < 0 || cfd < 0 || self < 0)
		zt_fail("open /proc files: %m");
	/* Reading moves the status file's position: it must come back. */
	if (read(cstatus, buf, 10) != 10)
		zt_fail("read child status");
	zt_ready();
	zt_wait_term();
	if (lseek(cstatus, 0, SEEK_CUR) != 10)
		zt_fail("child status offset %ld, want 10", (long)lseek(cstatus, 0, SEEK_CUR));
	if (status_pid(cstatus) != child)
		zt_fail("/proc/CHILD/status reads Pid %d, want %d", status_pid(cstatus), child);
	snprintf(path, sizeof(path), "/proc/%d/status", child);
	if (!link_is(cstatus, path))
		zt_fail("fd on the child's status points elsewhere");
	if (status_pid(self) != me)
		zt_fail("/proc/self/status fd reads Pid %d, want own pid %d", status_pid(self), me);
	snprintf(path, sizeof(path), "/proc/%d/status", me);
	if (!link_is(self, path))
		zt_fail("fd on /proc/self/status does not point at %s", path);
	/* The fd directory lists the child's fds: 0, 1, 2 and its stat file. */
	int d = dup(cfd), seen = 0;
	DIR *dir = fdopendir(d);
	struct dirent *de;
	if (!dir)
		zt_fail("fdopendir: %m");
	else {
		rewinddir(dir);
		while ((de = readdir(dir)))
			if (de->d_name[0] != '.')
				seen++;
		closedir(dir);
	}
	if (seen < 4)
		zt_fail("the child's fd directory lists %d fds, want at least 4", seen);
	snprintf(path, sizeof(path), "/proc/%d/fd", child);
	if (!link_is(cfd, path))
		zt_fail("fd on the child's fd directory points elsewhere");
	kill(child, SIGTERM);
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("child exited with status 0x%x", st);
	return zt_finish();
}
