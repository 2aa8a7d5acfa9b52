// zdtm: desc: seccomp filters: two stacked filters (getppid -> EPERM-like errno 1234, uname -> errno 2345) installed with no_new_privs in the main thread and a second thread keep working after restore
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: needs: seccomp_get_filter
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Return errno e for syscall nr, allow everything else. */
static int deny(long nr, int e)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | e),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
}

static void check(const char *who)
{
	struct utsname u;
	errno = 0;
	if (syscall(SYS_getppid) != -1 || errno != 1234)
		zt_fail("%s: getppid not filtered (errno %d)", who, errno);
	errno = 0;
	if (uname(&u) != -1 || errno != 2345)
		zt_fail("%s: uname not filtered (errno %d)", who, errno);
	char v[64];
	if (zt_status_field("/proc/thread-self/status", "Seccomp", v, sizeof v) || strcmp(v, "2"))
		zt_fail("%s: Seccomp: %s, want 2", who, v);
	if (zt_status_field("/proc/thread-self/status", "Seccomp_filters", v, sizeof v) || strcmp(v, "2"))
		zt_fail("%s: Seccomp_filters: %s, want 2", who, v);
}

static volatile int go;
static void *thread(void *arg)
{
	(void)arg;
	while (!go)
		usleep(1000);
	check("thread");
	go = 2;
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;

	zt_init(argc, argv);
	pthread_create(&t, NULL, thread, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		zt_fail("no_new_privs: %m");
	if (deny(SYS_getppid, 1234) || deny(SYS_uname, 2345))
		zt_fail("seccomp: %m");
	check("before");
	zt_ready();
	zt_wait_term();
	check("main");
	go = 1;
	while (go != 2)
		usleep(1000);
	return zt_finish();
}
