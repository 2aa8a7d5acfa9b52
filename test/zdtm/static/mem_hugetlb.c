// zdtm: desc: private anonymous hugetlb memory (MAP_HUGETLB, 2 MiB pages): two huge pages written, one left untouched; data, huge page size (smaps KernelPageSize) and VmFlags "ht" kept. Reserves huge pages (vm.nr_hugepages) for the test and gives them back; SKIP when none can be had
// zdtm: modes: restore snapshot twice predump criu-restore
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/mman.h>

#define HP (2UL << 20)
#define NHP 3

static long nr_hugepages(long set)
{
	char buf[32];
	int fd = open("/proc/sys/vm/nr_hugepages", set < 0 ? O_RDONLY : O_WRONLY);
	long n = -1;

	if (fd < 0)
		return -1;
	if (set < 0) {
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		if (r > 0) {
			buf[r] = 0;
			n = atol(buf);
		}
	} else {
		int l = snprintf(buf, sizeof(buf), "%ld", set);
		n = write(fd, buf, l) == l ? set : -1;
	}
	close(fd);
	return n;
}

/* area reads smaps of the area at addr: KernelPageSize in kB and whether VmFlags has "ht" */
static int area(void *addr, long *kps, int *ht)
{
	char line[512], want[32];
	int found = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	*kps = 0, *ht = 0;
	if (!f)
		return -1;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			found = 1;
		else if (found && !strncmp(line, "KernelPageSize:", 15))
			*kps = atol(line + 15);
		else if (found && !strncmp(line, "VmFlags:", 8)) {
			*ht = strstr(line, " ht") != NULL;
			break;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

int main(int argc, char **argv)
{
	unsigned char *m;
	long old, kps;
	int ht;

	zt_init(argc, argv);
	old = nr_hugepages(-1);
	if (old < 0) {
		zt_skip("no /proc/sys/vm/nr_hugepages");
	}
	nr_hugepages(old + NHP);
	m = mmap(NULL, NHP * HP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (m == MAP_FAILED) {
		nr_hugepages(old);
		zt_skip("no 2 MiB huge pages to be had (vm.nr_hugepages %ld + %d): %m", old, NHP);
	}
	zt_pattern_fill(m, HP, 1700);
	zt_pattern_fill(m + 2 * HP, HP, 1702);
	zt_ready();
	zt_wait_term();
	zt_pattern_expect("huge page 0", m, HP, 1700);
	for (unsigned long i = 0; i < HP; i++)
		if (m[HP + i]) {
			zt_fail("untouched huge page 1: byte %lu is %#x", i, m[HP + i]);
			break;
		}
	zt_pattern_expect("huge page 2", m + 2 * HP, HP, 1702);
	if (area(m, &kps, &ht))
		zt_fail("the hugetlb area at %p is gone from smaps", (void *)m);
	else if (kps != 2048 || !ht)
		zt_fail("the hugetlb area has KernelPageSize %ld kB (want 2048) and VmFlags %s ht", kps, ht ? "with" : "without");
	munmap(m, NHP * HP);
	nr_hugepages(old);
	return zt_finish();
}
