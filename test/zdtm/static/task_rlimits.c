// zdtm: desc: resource limits: soft and hard limits lowered for NOFILE, STACK, CORE, CPU, MEMLOCK, MSGQUEUE, NICE, FSIZE, SIGPENDING; all read back exactly
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sys/resource.h>

struct lim {
	int res;
	const char *name;
	rlim_t soft, hard;
};

static struct lim lims[] = {
	{ RLIMIT_NOFILE, "NOFILE", 512, 1000 },
	{ RLIMIT_STACK, "STACK", 4 << 20, 16 << 20 },
	{ RLIMIT_CORE, "CORE", 0, 1 << 20 },
	{ RLIMIT_CPU, "CPU", 1000, 2000 },
	{ RLIMIT_MEMLOCK, "MEMLOCK", 32 << 10, 64 << 10 },
	{ RLIMIT_MSGQUEUE, "MSGQUEUE", 4096, 8192 },
	{ RLIMIT_NICE, "NICE", 0, 0 },
	{ RLIMIT_FSIZE, "FSIZE", 1 << 30, RLIM_INFINITY },
	{ RLIMIT_SIGPENDING, "SIGPENDING", 1000, 2000 },
};
#define N (sizeof(lims) / sizeof(lims[0]))

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	for (size_t i = 0; i < N; i++) {
		struct rlimit r = { lims[i].soft, lims[i].hard };

		if (setrlimit(lims[i].res, &r))
			zt_fail("setrlimit %s", lims[i].name);
	}
	zt_ready();
	zt_wait_term();
	for (size_t i = 0; i < N; i++) {
		struct rlimit r;

		getrlimit(lims[i].res, &r);
		if (r.rlim_cur != lims[i].soft || r.rlim_max != lims[i].hard)
			zt_fail("RLIMIT_%s is %llu/%llu, want %llu/%llu", lims[i].name, (unsigned long long)r.rlim_cur,
				(unsigned long long)r.rlim_max, (unsigned long long)lims[i].soft,
				(unsigned long long)lims[i].hard);
	}
	return zt_finish();
}
