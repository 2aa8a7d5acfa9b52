// zdtm: desc: environment, command line and auxv: getenv of a value from the runner, a setenv'd one, /proc/self/{environ,cmdline,auxv} byte-exact, getauxval AT_PAGESZ/AT_RANDOM bytes/AT_ENTRY/AT_PHDR/AT_EXECFN unchanged
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: env: ZDTM_ENV_VALUE=checkpoint me = twice & more
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <elf.h>
#include <sys/auxv.h>

static const char want_env[] = "checkpoint me = twice & more";

int main(int argc, char **argv)
{
	static char environ0[65536], cmdline0[4096], auxv0[4096], buf[65536];
	long nenv, ncmd, naux;
	unsigned char random0[16];
	unsigned long keys[] = { AT_PAGESZ, AT_ENTRY, AT_PHDR, AT_PHNUM, AT_HWCAP, AT_HWCAP2, AT_CLKTCK, AT_RANDOM, AT_EXECFN, AT_SYSINFO_EHDR, AT_MINSIGSTKSZ };
	unsigned long vals[sizeof(keys) / sizeof(keys[0])];
	char execfn0[4096];

	zt_init(argc, argv);
	if (!getenv("ZDTM_ENV_VALUE") || strcmp(getenv("ZDTM_ENV_VALUE"), want_env))
		zt_fail("ZDTM_ENV_VALUE is %s at start", getenv("ZDTM_ENV_VALUE"));
	setenv("ZDTM_SET_AT_RUNTIME", "runtime value", 1);
	nenv = zt_read_file("/proc/self/environ", environ0, sizeof(environ0));
	ncmd = zt_read_file("/proc/self/cmdline", cmdline0, sizeof(cmdline0));
	naux = zt_read_file("/proc/self/auxv", auxv0, sizeof(auxv0));
	memcpy(random0, (void *)getauxval(AT_RANDOM), 16);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		vals[i] = getauxval(keys[i]);
	snprintf(execfn0, sizeof(execfn0), "%s", (char *)getauxval(AT_EXECFN));
	zt_ready();
	zt_wait_term();
	if (!getenv("ZDTM_ENV_VALUE") || strcmp(getenv("ZDTM_ENV_VALUE"), want_env))
		zt_fail("ZDTM_ENV_VALUE is %s", getenv("ZDTM_ENV_VALUE"));
	if (!getenv("ZDTM_SET_AT_RUNTIME") || strcmp(getenv("ZDTM_SET_AT_RUNTIME"), "runtime value"))
		zt_fail("ZDTM_SET_AT_RUNTIME is %s", getenv("ZDTM_SET_AT_RUNTIME"));
	long n = zt_read_file("/proc/self/environ", buf, sizeof(buf));
	if (n != nenv || memcmp(buf, environ0, n))
		zt_fail("/proc/self/environ differs (%ld bytes, was %ld)", n, nenv);
	n = zt_read_file("/proc/self/cmdline", buf, sizeof(buf));
	if (n != ncmd || memcmp(buf, cmdline0, n))
		zt_fail("/proc/self/cmdline differs (%ld bytes, was %ld)", n, ncmd);
	n = zt_read_file("/proc/self/auxv", buf, sizeof(buf));
	if (n != naux || memcmp(buf, auxv0, n))
		zt_fail("/proc/self/auxv differs (%ld bytes, was %ld)", n, naux);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (getauxval(keys[i]) != vals[i])
			zt_fail("auxv type %lu is 0x%lx, was 0x%lx", keys[i], getauxval(keys[i]), vals[i]);
	if (getauxval(AT_PAGESZ) != 4096)
		zt_fail("AT_PAGESZ %lu", getauxval(AT_PAGESZ));
	if (memcmp(random0, (void *)getauxval(AT_RANDOM), 16))
		zt_fail("AT_RANDOM bytes differ");
	if (strcmp(execfn0, (char *)getauxval(AT_EXECFN)))
		zt_fail("AT_EXECFN is %s, was %s", (char *)getauxval(AT_EXECFN), execfn0);
	if (argc < 3 || strcmp(argv[1], "-p"))
		zt_fail("argv changed");
	return zt_finish();
}
