// zdtm: desc: pidfds of processes reaped before the dump: two pidfds (fd 10 blocking, fd 11 PIDFD_NONBLOCK) of a child that exited with 7, one (fd 12) of a child killed by SIGUSR2; after restore each fdinfo Pid: is -1, fds 10 and 11 refer to one process and fd 12 to another (pidfs inodes), poll is readable, pidfd_send_signal fails with ESRCH, waitid(P_PIDFD) with ECHILD, and PIDFD_GET_INFO tells the exit status each process had
// zdtm: modes: restore snapshot twice predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* linux/pidfd.h clashes with glibc's fcntl.h: its values, spelled out. */
#define PIDFD_NONBLOCK O_NONBLOCK
#define PIDFD_INFO_EXIT (1UL << 3)

enum { EXITED = 10, EXITED_NB = 11, KILLED = 12 };

/* struct pidfd_info as far as the exit code (PIDFD_INFO_SIZE_VER0, Linux 6.13). */
struct pidfd_info_v0 {
	uint64_t mask, cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
};
#define PIDFD_GET_INFO_V0 _IOWR(0xFF, 11, struct pidfd_info_v0)

static int fdinfo_pid(int fd)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if (zt_read_file(path, buf, sizeof buf) < 0)
		return -2;
	p = strstr(buf, "\nPid:");
	return p ? atoi(p + 5) : -2;
}

/* A pidfd at fd number want of a child that ends with end (exit code, or -signal). */
static pid_t reaped_child(int end, int want, int want_nb)
{
	int p[2];
	char c;
	pid_t kid;

	if (pipe(p))
		return -1;
	kid = fork();
	if (!kid) {
		signal(SIGUSR2, SIG_DFL);
		close(p[1]);
		if (read(p[0], &c, 1) < 0)
			_exit(1);
		_exit(end);
	}
	close(p[0]);
	int fd = syscall(SYS_pidfd_open, kid, 0);
	if (fd < 0 || dup3(fd, want, O_CLOEXEC) != want)
		return -1;
	close(fd);
	if (want_nb >= 0) {
		fd = syscall(SYS_pidfd_open, kid, PIDFD_NONBLOCK);
		if (fd < 0 || dup3(fd, want_nb, O_CLOEXEC) != want_nb)
			return -1;
		close(fd);
	}
	if (end < 0)
		kill(kid, -end);
	close(p[1]);
	if (waitpid(kid, NULL, 0) != kid)
		return -1;
	return kid;
}

static void check(int fd, int want_status)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	siginfo_t si;
	int fl;

	if (fdinfo_pid(fd) != -1)
		zt_fail("pidfd %d has Pid: %d, want -1 (a reaped process)", fd, fdinfo_pid(fd));
	if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLIN))
		zt_fail("pidfd %d of a reaped process does not poll readable", fd);
	errno = 0;
	if (syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) != -1 || errno != ESRCH)
		zt_fail("pidfd_send_signal(%d, 0): %m, want ESRCH", fd);
	errno = 0;
	if (waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG) != -1 || errno != ECHILD)
		zt_fail("waitid(P_PIDFD, %d): %m, want ECHILD", fd);
	struct pidfd_info_v0 info = { .mask = PIDFD_INFO_EXIT };
	if (ioctl(fd, PIDFD_GET_INFO_V0, &info) == 0) {
		if (!(info.mask & PIDFD_INFO_EXIT) || info.exit_code != want_status)
			zt_fail("pidfd %d: PIDFD_GET_INFO exit status %#x (mask %#llx), want %#x", fd, info.exit_code, (unsigned long long)info.mask, want_status);
	} else if (errno != ENOTTY && errno != EINVAL) {
		zt_fail("pidfd %d: PIDFD_GET_INFO: %m", fd);
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || !!(fl & O_NONBLOCK) != (fd == EXITED_NB))
		zt_fail("pidfd %d has flags %#o", fd, fl);
}

int main(int argc, char **argv)
{
	struct stat a, b, c;

	zt_init(argc, argv);
	if (reaped_child(7, EXITED, EXITED_NB) < 0 || reaped_child(-SIGUSR2, KILLED, -1) < 0)
		zt_fail("setup: %m");
	zt_ready();
	zt_wait_term();

	check(EXITED, 7 << 8);
	check(EXITED_NB, 7 << 8);
	check(KILLED, SIGUSR2);
	if (fstat(EXITED, &a) || fstat(EXITED_NB, &b) || fstat(KILLED, &c))
		zt_fail("fstat: %m");
	else if (a.st_ino != b.st_ino || a.st_ino == c.st_ino)
		zt_fail("pidfds 10, 11 and 12 are on inodes %lu %lu %lu: want the first two equal, the third different",
			(unsigned long)a.st_ino, (unsigned long)b.st_ino, (unsigned long)c.st_ino);
	return zt_finish();
}
