// zdtm: desc: a full fd table: every free number up to fd 2,000 filled with /dev/null, every other one FD_CLOEXEC, a run of 40 closed in the middle, a file at a position in the run after it and fds far above the rest; after restore every fd is where it was, with its flag, the closed ones stay closed, and the file reads on from its position
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define N 2000
#define HOLE_LO 1000
#define HOLE_HI 1040
#define FILE_FD 1500
#define FAR 6000

static unsigned char data[8192];

static char ours[N];

static int closed(int fd) { return fd >= HOLE_LO && fd < HOLE_HI; }

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct stat st;
	int base = -1;

	zt_init(argc, argv);
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max < FAR + 64)
		zt_skip("RLIMIT_NOFILE hard limit %lu is below %d", (unsigned long)rl.rlim_max, FAR + 64);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	for (int fd = 0; fd < N; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue; /* the harness's */
		int got = open("/dev/null", O_RDWR | (fd % 2 ? O_CLOEXEC : 0));
		if (got != fd)
			zt_fail("open gave fd %d, want %d", got, fd);
		ours[fd] = 1;
		if (base < 0)
			base = fd;
	}
	for (int fd = HOLE_LO; fd < HOLE_HI; fd++)
		close(fd);
	int f = open("table.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	zt_pattern_fill(data, sizeof(data), 7);
	if (f < 0 || write(f, data, sizeof(data)) != sizeof(data))
		zt_fail("write table.dat");
	if (dup2(f, FILE_FD) != FILE_FD || lseek(FILE_FD, 3000, SEEK_SET) != 3000)
		zt_fail("table.dat at fd %d", FILE_FD);
	close(f); /* its number goes back into the hole */
	if (dup3(base, FAR, O_CLOEXEC) != FAR || dup2(base, FAR + 7) != FAR + 7)
		zt_fail("dup to fds %d and %d", FAR, FAR + 7);
	zt_ready();
	zt_wait_term();
	for (int fd = base; fd < N; fd++) {
		int fdf = fcntl(fd, F_GETFD);
		if (!ours[fd])
			continue;
		if (closed(fd)) {
			if (fdf != -1 || errno != EBADF)
				zt_fail("fd %d was closed, now it is open", fd);
			continue;
		}
		if (fdf < 0) {
			zt_fail("fd %d is closed", fd);
			continue;
		}
		if (fd == FILE_FD)
			continue;
		if (!!(fdf & FD_CLOEXEC) != fd % 2)
			zt_fail("fd %d: FD_CLOEXEC is %d, want %d", fd, !!(fdf & FD_CLOEXEC), fd % 2);
		if (fstat(fd, &st) || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
			zt_fail("fd %d is not /dev/null", fd);
	}
	if (fcntl(FILE_FD, F_GETFD) != 0)
		zt_fail("fd %d: FD_CLOEXEC set", FILE_FD);
	unsigned char buf[100];
	if (read(FILE_FD, buf, sizeof(buf)) != sizeof(buf) || memcmp(buf, data + 3000, sizeof(buf)))
		zt_fail("table.dat does not read on from position 3000");
	if (fcntl(FAR, F_GETFD) != FD_CLOEXEC || fcntl(FAR + 7, F_GETFD) != 0)
		zt_fail("fds %d and %d: FD_CLOEXEC %d and %d, want 1 and 0", FAR, FAR + 7, fcntl(FAR, F_GETFD), fcntl(FAR + 7, F_GETFD));
	if (fcntl(FAR + 1, F_GETFD) != -1)
		zt_fail("fd %d is open", FAR + 1);
	return zt_finish();
}
