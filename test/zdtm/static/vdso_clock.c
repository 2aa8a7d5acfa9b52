// zdtm: desc: vDSO clocks: a busy loop reading CLOCK_MONOTONIC/BOOTTIME/REALTIME through the vDSO never sees time go backwards across checkpoint/restore, clocks keep advancing, AT_SYSINFO_EHDR still points at [vdso]
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <sys/auxv.h>
#include <time.h>

static long long ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static unsigned long vdso_start(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long s = 0;

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "[vdso]")) {
			sscanf(line, "%lx", &s);
			break;
		}
	if (f)
		fclose(f);
	return s;
}

int main(int argc, char **argv)
{
	long long mono, boot, back_mono = 0, back_boot = 0;
	long iterations = 0;

	zt_init(argc, argv);
	if (getauxval(AT_SYSINFO_EHDR) != vdso_start())
		zt_fail("AT_SYSINFO_EHDR 0x%lx, [vdso] at 0x%lx before checkpoint", getauxval(AT_SYSINFO_EHDR), vdso_start());
	mono = ns(CLOCK_MONOTONIC);
	boot = ns(CLOCK_BOOTTIME);
	zt_ready();
	while (!zt_stop) {
		long long m = ns(CLOCK_MONOTONIC), b = ns(CLOCK_BOOTTIME);

		if (m < mono)
			back_mono = mono - m;
		if (b < boot)
			back_boot = boot - b;
		mono = m;
		boot = b;
		iterations++;
	}
	if (back_mono)
		zt_fail("CLOCK_MONOTONIC went back by %lld ns", back_mono);
	if (back_boot)
		zt_fail("CLOCK_BOOTTIME went back by %lld ns", back_boot);
	long long m0 = ns(CLOCK_MONOTONIC), r0 = ns(CLOCK_REALTIME);
	struct timespec d = { 0, 50000000 };
	while (nanosleep(&d, &d))
		;
	long long dm = ns(CLOCK_MONOTONIC) - m0, dr = ns(CLOCK_REALTIME) - r0;
	if (dm < 50000000 || dm > 5000000000LL)
		zt_fail("CLOCK_MONOTONIC advanced %lld ns over a 50 ms sleep", dm);
	if (dr < 40000000 || dr > 5000000000LL)
		zt_fail("CLOCK_REALTIME advanced %lld ns over a 50 ms sleep", dr);
	if (getauxval(AT_SYSINFO_EHDR) != vdso_start())
		zt_fail("AT_SYSINFO_EHDR 0x%lx, [vdso] at 0x%lx", getauxval(AT_SYSINFO_EHDR), vdso_start());
	zt_log("%ld clock reads", iterations);
	return zt_finish();
}
