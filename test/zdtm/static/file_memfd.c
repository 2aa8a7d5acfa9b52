// zdtm: desc: memfds held as fds: one with data around a hole and a partial last page, sealed against shrinking and growing, mode 0640, open three ways (the memfd_create fd and a dup of it at position 123, a read-only reopening at 4096, a write-only O_APPEND one) and inherited by a forked child; an empty one without sealing; a write-sealed one; after restore names, contents, holes, sizes, seals, modes, flags, positions and sharing (the dup and across tasks) are as set
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PG 4096
#define SIZE (10 * PG + PG / 2)

static int reopen(int fd, int flags)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return open(path, flags);
}

static void check_name(int fd, const char *want)
{
	char path[64], link[256];
	ssize_t n;

	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof link - 1);
	link[n < 0 ? 0 : n] = 0;
	if (strcmp(link, want))
		zt_fail("fd %d is %s, want %s", fd, link, want);
}

static void check_data(int fd)
{
	static char buf[SIZE], want[SIZE];
	struct stat st;
	off_t d;

	memset(want, 0, sizeof want);
	zt_pattern_fill(want, 3 * PG, 1);
	zt_pattern_fill(want + 10 * PG, PG / 2, 2);
	if (pread(fd, buf, sizeof buf, 0) != SIZE || memcmp(buf, want, SIZE))
		zt_fail("data memfd: contents differ");
	if (fstat(fd, &st) || st.st_size != SIZE || (st.st_mode & 07777) != 0640)
		zt_fail("data memfd: size %lld mode %o, want %d and 640", (long long)st.st_size, st.st_mode & 07777, SIZE);
	int probe = reopen(fd, O_RDONLY); /* leaves fd's position alone */
	d = lseek(probe, 3 * PG, SEEK_DATA);
	close(probe);
	if (d != 10 * PG)
		zt_fail("data memfd: data after the hole starts at %lld, want %d (the hole is gone)", (long long)d, 10 * PG);
	if (fcntl(fd, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW))
		zt_fail("data memfd: seals %#x, want %#x", fcntl(fd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW);
}

int main(int argc, char **argv)
{
	static char page[3 * PG];
	int data, dup_fd, ro, wo, empty, sealed, ready[2], go[2], status;
	char c, buf[8];

	zt_init(argc, argv);
	data = memfd_create("data", MFD_ALLOW_SEALING);
	empty = memfd_create("empty", 0);
	sealed = memfd_create("sealed", MFD_ALLOW_SEALING);
	if (data < 0 || empty < 0 || sealed < 0)
		return 1;
	zt_pattern_fill(page, sizeof page, 1);
	if (pwrite(data, page, 3 * PG, 0) != 3 * PG || ftruncate(data, SIZE))
		return 1;
	zt_pattern_fill(page, PG / 2, 2);
	if (pwrite(data, page, PG / 2, 10 * PG) != PG / 2 || fchmod(data, 0640))
		return 1;
	if (fcntl(data, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		return 1;
	if (write(sealed, "hello", 5) != 5 || fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL))
		return 1;
	dup_fd = dup(data);
	ro = reopen(data, O_RDONLY);
	wo = reopen(data, O_WRONLY | O_APPEND);
	if (dup_fd < 0 || ro < 0 || wo < 0 || lseek(data, 123, SEEK_SET) != 123 || lseek(ro, PG, SEEK_SET) != PG)
		return 1;
	if (pipe(ready) || pipe(go))
		return 1;
	pid_t child = fork();
	if (child == 0) {
		close(ready[0]);
		close(go[1]);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(2);
		/* The same open file description as the parent's: move it. */
		if (lseek(data, 77, SEEK_SET) != 77 || pwrite(data, "Z", 1, 5000) != 1)
			_exit(3);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1)
		zt_fail("child not ready");
	zt_ready();
	zt_wait_term();

	check_name(data, "/memfd:data (deleted)");
	check_name(ro, "/memfd:data (deleted)");
	check_name(empty, "/memfd:empty (deleted)");
	check_name(sealed, "/memfd:sealed (deleted)");
	check_data(data);
	check_data(ro);
	if (lseek(data, 0, SEEK_CUR) != 123 || lseek(dup_fd, 0, SEEK_CUR) != 123 || lseek(ro, 0, SEEK_CUR) != PG)
		zt_fail("positions %lld %lld %lld, want 123 123 %d", (long long)lseek(data, 0, SEEK_CUR),
			(long long)lseek(dup_fd, 0, SEEK_CUR), (long long)lseek(ro, 0, SEEK_CUR), PG);
	if ((fcntl(data, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(ro, F_GETFL) & O_ACCMODE) != O_RDONLY ||
	    (fcntl(wo, F_GETFL) & (O_ACCMODE | O_APPEND)) != (O_WRONLY | O_APPEND))
		zt_fail("flags %#x %#x %#x", fcntl(data, F_GETFL), fcntl(ro, F_GETFL), fcntl(wo, F_GETFL));
	if (fcntl(empty, F_GET_SEALS) != F_SEAL_SEAL || lseek(empty, 0, SEEK_END) != 0)
		zt_fail("empty memfd: seals %#x size %lld", fcntl(empty, F_GET_SEALS), (long long)lseek(empty, 0, SEEK_END));
	if (fcntl(sealed, F_GET_SEALS) != (F_SEAL_WRITE | F_SEAL_SEAL) || pread(sealed, buf, 8, 0) != 5 || memcmp(buf, "hello", 5))
		zt_fail("sealed memfd: seals %#x or contents differ", fcntl(sealed, F_GET_SEALS));
	if (write(sealed, "x", 1) != -1)
		zt_fail("sealed memfd takes writes");
	/* Sharing: the child moves the shared position and writes. */
	if (write(go[1], "g", 1) != 1 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
		zt_fail("child failed (status %#x)", status);
	if (lseek(dup_fd, 0, SEEK_CUR) != 77)
		zt_fail("the child's seek did not move the parent's dup (position %lld)", (long long)lseek(dup_fd, 0, SEEK_CUR));
	if (pread(ro, buf, 1, 5000) != 1 || buf[0] != 'Z')
		zt_fail("the child's write is not in the parent's memfd");
	return zt_finish();
}
