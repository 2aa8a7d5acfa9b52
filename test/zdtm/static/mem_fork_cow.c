// zdtm: desc: copy-on-write memory shared between parent and child after fork: pages both still share, pages the child rewrote, pages the parent rewrote; each side checks its own view
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096
#define NP 32

static int check(unsigned char *m, int child)
{
	int bad = 0;

	for (int i = 0; i < NP; i++) {
		uint32_t seed = 700 + i;

		if (i % 4 == 1 && child)
			seed = 800 + i;
		if (i % 4 == 2 && !child)
			seed = 900 + i;
		if (zt_pattern_check(m + i * PG, PG, seed) >= 0) {
			dprintf(1, "FAIL: %s: page %d differs\n", child ? "child" : "parent", i);
			bad = 1;
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	unsigned char *m;
	int p[2];
	char c;

	zt_init(argc, argv);
	m = mmap(NULL, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < NP; i++)
		zt_pattern_fill(m + i * PG, PG, 700 + i);
	if (pipe(p))
		return 1;
	pid_t child = fork();
	if (!child) {
		close(p[0]);
		for (int i = 1; i < NP; i += 4)
			zt_pattern_fill(m + i * PG, PG, 800 + i);
		if (write(p[1], "c", 1) != 1)
			_exit(2);
		close(p[1]);
		zt_wait_term();
		_exit(check(m, 1));
	}
	close(p[1]);
	for (int i = 2; i < NP; i += 4)
		zt_pattern_fill(m + i * PG, PG, 900 + i);
	if (read(p[0], &c, 1) != 1)
		zt_fail("child died in setup");
	close(p[0]);
	zt_ready();
	zt_wait_term();
	if (check(m, 0))
		zt_fail("parent view of COW memory differs");
	kill(child, SIGTERM);
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st))
		zt_fail("child view of COW memory differs (status 0x%x)", st);
	return zt_finish();
}
