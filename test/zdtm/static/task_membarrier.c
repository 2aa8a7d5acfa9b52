// zdtm: desc: membarrier registrations: the root task registers PRIVATE_EXPEDITED, PRIVATE_EXPEDITED_SYNC_CORE and PRIVATE_EXPEDITED_RSEQ (where the kernel has them), a child forked before stays unregistered; after restore the barriers succeed in the root and fail with EPERM in the child
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define CMD_QUERY 0
#define CMD_PRIVATE_EXPEDITED (1 << 3)
#define CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#define CMD_PRIVATE_EXPEDITED_SYNC_CORE (1 << 5)
#define CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE (1 << 6)
#define CMD_PRIVATE_EXPEDITED_RSEQ (1 << 7)
#define CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ (1 << 8)

static long membarrier(int cmd)
{
	return syscall(SYS_membarrier, cmd, 0, 0);
}

static const int barriers[] = { CMD_PRIVATE_EXPEDITED, CMD_PRIVATE_EXPEDITED_SYNC_CORE, CMD_PRIVATE_EXPEDITED_RSEQ };

/* Which of the barriers succeed (bit i for barriers[i]); EPERM means unregistered. */
static int working(void)
{
	int m = 0;

	for (int i = 0; i < 3; i++) {
		long r = membarrier(barriers[i]);
		if (r == 0)
			m |= 1 << i;
		else if (errno != EPERM && errno != EINVAL)
			dprintf(1, "FAIL: membarrier(%#x): %s\n", barriers[i], strerror(errno));
	}
	return m;
}

int main(int argc, char **argv)
{
	int ready[2];
	char c;

	zt_init(argc, argv);
	long have = membarrier(CMD_QUERY);
	if (have < 0 || !(have & CMD_PRIVATE_EXPEDITED)) {
		zt_fail("membarrier: no PRIVATE_EXPEDITED in this kernel (query %ld)", have);
		return zt_finish();
	}
	if (pipe(ready))
		return 1;
	pid_t child = fork();
	if (!child) {
		close(ready[0]);
		if (write(ready[1], "c", 1) != 1)
			_exit(2);
		close(ready[1]);
		zt_wait_term();
		int m = working();
		if (m) {
			dprintf(1, "FAIL: child: barriers %#x work, want none (it never registered)\n", m);
			_exit(1);
		}
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child died in setup");
	close(ready[0]);
	int want = 0;
	const int regs[] = { CMD_REGISTER_PRIVATE_EXPEDITED, CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
			     CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ };
	for (int i = 0; i < 3; i++) {
		if (!(have & regs[i]))
			continue;
		if (membarrier(regs[i]))
			zt_fail("membarrier register %#x: %s", regs[i], strerror(errno));
		else
			want |= 1 << i;
	}
	int m = working();
	if (m != want)
		zt_fail("before checkpoint: barriers %#x work, want %#x", m, want);
	zt_log("registered %#x", want);
	zt_ready();
	zt_wait_term();
	m = working();
	if (m != want)
		zt_fail("root: barriers %#x work, want %#x (registration lost)", m, want);
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		zt_fail("child: registrations differ (status 0x%x)", st);
	return zt_finish();
}
