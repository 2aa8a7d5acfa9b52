// zdtm: desc: mappings of deleted files: a private one with a changed page and a shared one of the same file, whose fd stays open (the shared mapping and the fd stay one file both ways), and a shared mapping of a deleted file no fd holds
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PG 4096
#define LEN (3 * PG)

static int mapped_deleted(void *addr, const char *name)
{
	char line[1024];
	FILE *f = fopen("/proc/self/maps", "r");
	int found = 0;
	while (f && fgets(line, sizeof(line), f))
		if (strtoul(line, NULL, 16) == (unsigned long)addr && strstr(line, name) && strstr(line, " (deleted)"))
			found = 1;
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	static unsigned char buf[LEN], want[LEN];
	unsigned char *priv, *shared, *solo;
	struct stat st;
	int fd, sfd;

	zt_init(argc, argv);
	fd = open("mapped.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	sfd = open("solo.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	zt_pattern_fill(buf, LEN, 41);
	if (fd < 0 || sfd < 0 || write(fd, buf, LEN) != LEN)
		return 1;
	zt_pattern_fill(buf, LEN, 42);
	if (write(sfd, buf, LEN) != LEN)
		return 1;
	priv = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	shared = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	solo = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	if (priv == MAP_FAILED || shared == MAP_FAILED || solo == MAP_FAILED)
		return 1;
	close(sfd);
	memset(priv, 'p', 100); /* private copy of page 0 */
	memcpy(shared + PG, "shared write", 12);
	if (unlink("mapped.dat") || unlink("solo.dat"))
		return 1;
	zt_ready();
	zt_wait_term();

	zt_pattern_fill(want, LEN, 41);
	memcpy(want + PG, "shared write", 12);
	if (memcmp(shared, want, LEN))
		zt_fail("shared mapping content differs");
	if (pread(fd, buf, LEN, 0) != LEN || memcmp(buf, want, LEN))
		zt_fail("file content through the fd differs");
	memset(want, 'p', 100);
	if (memcmp(priv, want, PG))
		zt_fail("private mapping: page 0 differs");
	if (memcmp(priv + PG, want + PG, LEN - PG))
		zt_fail("private mapping: pages 1-2 differ from the file");
	zt_pattern_fill(want, LEN, 42);
	if (memcmp(solo, want, LEN))
		zt_fail("mapping of solo.dat differs");
	/* The shared mapping and the fd are one file, both ways. */
	memcpy(shared + 2 * PG, "via map", 7);
	if (pread(fd, buf, 7, 2 * PG) != 7 || memcmp(buf, "via map", 7))
		zt_fail("a write to the shared mapping does not show through the fd");
	if (pwrite(fd, "via fd", 6, 100) != 6 || memcmp(shared + 100, "via fd", 6))
		zt_fail("a write through the fd does not show in the shared mapping");
	if (!memcmp(priv + 100, "via fd", 6))
		zt_fail("the private mapping follows the file where it has its own copy");
	if (fstat(fd, &st) || st.st_nlink != 0 || st.st_size != LEN)
		zt_fail("fd: nlink %ld size %ld", (long)st.st_nlink, (long)st.st_size);
	if (!mapped_deleted(priv, "/mapped.dat") || !mapped_deleted(shared, "/mapped.dat") || !mapped_deleted(solo, "/solo.dat"))
		zt_fail("/proc/self/maps does not name the deleted files");
	return zt_finish();
}
