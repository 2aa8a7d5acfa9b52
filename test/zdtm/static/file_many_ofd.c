// zdtm: desc: 3000 open file descriptions of /dev/null, every third dup'ed and every fifth shared with a child across fork; after restore each pair still shares its open file description (O_NONBLOCK set through one shows through the other, in both tasks) and no two separate opens do
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 3000
#define BASE 100

static int fds[N], dups[N];

static int nonblock(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

/* Toggles O_NONBLOCK on fds[i] and checks who sees it; returns failures. */
static int check(const char *who)
{
	int bad = 0;
	for (int i = 0; i < N; i++) {
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
		if (dups[i] >= 0 && !nonblock(dups[i])) {
			dprintf(1, "FAIL: %s: fd %d and its dup %d no longer share\n", who, fds[i], dups[i]);
			bad++;
		}
		if (i + 1 < N && nonblock(fds[i + 1])) {
			dprintf(1, "FAIL: %s: fds %d and %d share, opened apart\n", who, fds[i], fds[i + 1]);
			bad++;
		}
		fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) & ~O_NONBLOCK);
		if (bad > 10)
			break;
	}
	return bad;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	int ready[2], go[2], status;
	char c;

	zt_init(argc, argv);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < BASE + 2 * N + 64)
		zt_skip("RLIMIT_NOFILE hard limit %lu is below %d", (unsigned long)rl.rlim_max, BASE + 2 * N + 64);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	for (int i = 0; i < N; i++) {
		int fd = open("/dev/null", O_RDWR);
		fds[i] = fcntl(fd, F_DUPFD, BASE + i);
		close(fd);
		dups[i] = i % 3 == 0 ? fcntl(fds[i], F_DUPFD, BASE + N + i) : -1;
	}
	if (pipe(ready) || pipe(go))
		return 1;
	pid_t child = fork();
	if (child == 0) {
		/* The child keeps every fifth: the others it closes. */
		for (int i = 0; i < N; i++)
			if (i % 5 != 0) {
				close(fds[i]);
				if (dups[i] >= 0)
					close(dups[i]);
			}
		write(ready[1], "r", 1);
		read(go[0], &c, 1);
		/* The parent has toggled each shared one; the child checks its
		 * copies show the parent's last state (off) and share among
		 * themselves. */
		int bad = 0;
		for (int i = 0; i < N; i += 5) {
			fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
			if (dups[i] >= 0 && !nonblock(dups[i]))
				bad++;
		}
		write(ready[1], "d", 1);
		_exit(bad ? 1 : 0);
	}
	read(ready[0], &c, 1);
	zt_ready();
	zt_wait_term();
	if (check("parent"))
		zt_fail("open file descriptions of the parent differ (see above)");
	write(go[1], "g", 1);
	read(ready[0], &c, 1);
	/* What the child set on the shared ones shows in the parent. */
	for (int i = 0; i < N; i += 5)
		if (!nonblock(fds[i])) {
			zt_fail("fd %d is no longer shared with the child", fds[i]);
			break;
		}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		zt_fail("child: its dups no longer share (status %#x)", status);
	return zt_finish();
}
