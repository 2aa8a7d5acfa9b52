/* A process whose seccomp filter kills it on memfd_create, userfaultfd and
 * brk (with SECCOMP_RET_KILL_PROCESS): calls a dump injects. Dumps and
 * pre-dumps must suspend the filter for their own syscalls, or they kill
 * it. Logs "ok N" lines to DIR/log. Usage: seccompkill DIR */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
	char path[512];
	snprintf(path, sizeof path, "%s/log", argv[1]);
	FILE *log = fopen(path, "a");
	setvbuf(log, 0, _IOLBF, 0);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_memfd_create, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_brk, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) return 1;
	snprintf(path, sizeof path, "%s/ready", argv[1]);
	fclose(fopen(path, "w"));
	for (long n = 1;; n++) {
		fprintf(log, "ok %ld\n", n);
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, 0);
	}
}
