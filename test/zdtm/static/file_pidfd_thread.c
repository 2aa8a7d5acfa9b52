// zdtm: desc: per-thread pidfds (PIDFD_THREAD): the root holds one of its second thread (fd 10) and one of its main thread (fd 11); after restore fdinfo Pid: is each thread's TID, the flags keep PIDFD_THREAD, neither polls readable while its thread lives, and fd 10 polls readable once the second thread exits while fd 11 stays not readable
// zdtm: modes: restore snapshot twice predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/syscall.h>

#define PIDFD_THREAD O_EXCL

enum { OF_THREAD = 10, OF_MAIN = 11 };

static volatile int tid, quit;

static void *worker(void *arg)
{
	tid = gettid();
	while (!quit)
		usleep(1000);
	return arg;
}

static int fdinfo_pid(int fd)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if (zt_read_file(path, buf, sizeof buf) < 0)
		return -2;
	p = strstr(buf, "\nPid:");
	return p ? atoi(p + 5) : -2;
}

static int pidfd_at(pid_t pid, int want)
{
	int fd = syscall(SYS_pidfd_open, pid, PIDFD_THREAD);

	if (fd < 0 || dup3(fd, want, O_CLOEXEC) != want)
		return -1;
	close(fd);
	return want;
}

static int readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, timeout_ms);

	return n < 0 ? -1 : n > 0 && (p.revents & POLLIN);
}

int main(int argc, char **argv)
{
	pthread_t th;

	zt_init(argc, argv);
	if (pthread_create(&th, NULL, worker, NULL))
		return 1;
	while (!tid)
		usleep(1000);
	if (pidfd_at(tid, OF_THREAD) < 0 || pidfd_at(getpid(), OF_MAIN) < 0)
		zt_fail("pidfd_open(PIDFD_THREAD): %m");
	zt_ready();
	zt_wait_term();

	if (fdinfo_pid(OF_THREAD) != tid)
		zt_fail("pidfd %d has Pid: %d, want the thread %d", OF_THREAD, fdinfo_pid(OF_THREAD), tid);
	if (fdinfo_pid(OF_MAIN) != getpid())
		zt_fail("pidfd %d has Pid: %d, want the main thread %d", OF_MAIN, fdinfo_pid(OF_MAIN), getpid());
	for (int fd = OF_THREAD; fd <= OF_MAIN; fd++) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || !(fl & PIDFD_THREAD))
			zt_fail("pidfd %d has flags %#o, want PIDFD_THREAD", fd, fl);
		if (readable(fd, 0) != 0)
			zt_fail("pidfd %d of a living thread polls readable", fd);
	}
	quit = 1;
	pthread_join(th, NULL);
	if (readable(OF_THREAD, 10000) != 1)
		zt_fail("the thread's pidfd does not poll readable once it exited");
	if (readable(OF_MAIN, 0) != 0)
		zt_fail("the main thread's pidfd polls readable while it runs");
	return zt_finish();
}
