// zdtm: desc: deleted device nodes: copies of /dev/null and /dev/zero made with mknod, opened, unlinked; after restore rdev, mode and link count 0 match and they read and write as those devices
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static void check(int fd, const char *name, unsigned maj, unsigned min)
{
	struct stat st;
	if (fstat(fd, &st))
		zt_fail("%s: fstat: %m", name);
	else if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != maj || minor(st.st_rdev) != min || st.st_nlink != 0 || (st.st_mode & 07777) != 0620)
		zt_fail("%s: mode 0%o rdev %u:%u nlink %ld, want a character device 1:%u, 0620, nlink 0", name,
			st.st_mode, major(st.st_rdev), minor(st.st_rdev), (long)st.st_nlink, min);
}

int main(int argc, char **argv)
{
	char buf[100];
	int null, zero;

	zt_init(argc, argv);
	umask(0);
	if (mknod("null copy", S_IFCHR | 0620, makedev(1, 3)) || mknod("zero copy", S_IFCHR | 0620, makedev(1, 5)))
		return 1;
	null = open("null copy", O_RDWR);
	zero = open("zero copy", O_RDONLY);
	if (null < 0 || zero < 0 || unlink("null copy") || unlink("zero copy"))
		return 1;
	zt_ready();
	zt_wait_term();
	check(null, "null copy", 1, 3);
	check(zero, "zero copy", 1, 5);
	if ((fcntl(null, F_GETFL) & O_ACCMODE) != O_RDWR || (fcntl(zero, F_GETFL) & O_ACCMODE) != O_RDONLY)
		zt_fail("access modes 0%o 0%o", fcntl(null, F_GETFL), fcntl(zero, F_GETFL));
	if (write(null, "x", 1) != 1 || read(null, buf, sizeof(buf)) != 0)
		zt_fail("null copy does not behave as /dev/null");
	memset(buf, 'x', sizeof(buf));
	if (read(zero, buf, sizeof(buf)) != sizeof(buf))
		zt_fail("zero copy: short read");
	for (int i = 0; i < (int)sizeof(buf); i++)
		if (buf[i]) {
			zt_fail("zero copy read byte %d as %d", i, buf[i]);
			break;
		}
	return zt_finish();
}
