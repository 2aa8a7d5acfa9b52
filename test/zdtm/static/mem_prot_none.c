// zdtm: desc: PROT_NONE areas holding data written before the protection was dropped (anonymous and private-file); access still faults, data intact once readable again
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LEN (8 * 4096)
static sigjmp_buf jb;
static volatile void *fault_addr;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	fault_addr = si->si_addr;
	siglongjmp(jb, 1);
}

static int faults(volatile unsigned char *p)
{
	if (sigsetjmp(jb, 1))
		return fault_addr == p;
	(void)*p;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char *anon, *file;
	int fd;

	zt_init(argc, argv);
	anon = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	zt_pattern_fill(anon, LEN, 77);
	mprotect(anon, LEN, PROT_NONE);

	fd = open("pn.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, LEN))
		return 1;
	file = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	zt_pattern_fill(file, LEN / 2, 78);
	mprotect(file, LEN, PROT_NONE);

	struct sigaction sa = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };
	sigaction(SIGSEGV, &sa, NULL);
	zt_ready();
	zt_wait_term();
	if (!faults(anon + 100))
		zt_fail("anonymous PROT_NONE area did not fault on read");
	if (!faults(file + 5000))
		zt_fail("file PROT_NONE area did not fault on read");
	mprotect(anon, LEN, PROT_READ);
	mprotect(file, LEN, PROT_READ);
	zt_pattern_expect("anonymous PROT_NONE data", anon, LEN, 77);
	zt_pattern_expect("file PROT_NONE data (written half)", file, LEN / 2, 78);
	for (int i = LEN / 2; i < LEN; i++)
		if (file[i]) {
			zt_fail("file PROT_NONE data: unwritten byte %d is 0x%02x", i, file[i]);
			break;
		}
	return zt_finish();
}
