// zdtm: desc: deleted-but-open regular files: a 200 KiB one at an offset and an empty one; content, size, offset, link count 0 and "(deleted)" name kept, still writable
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/stat.h>

#define LEN (200 * 1024)

int main(int argc, char **argv)
{
	static unsigned char buf[LEN];
	int fd, empty;
	char link[512], path[64];
	struct stat st;

	zt_init(argc, argv);
	fd = open("ghost.dat", O_RDWR | O_CREAT | O_TRUNC, 0640);
	empty = open("ghost-empty.dat", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	zt_pattern_fill(buf, LEN, 5);
	if (fd < 0 || empty < 0 || write(fd, buf, LEN) != LEN)
		return 1;
	lseek(fd, 4096, SEEK_SET);
	unlink("ghost.dat");
	unlink("ghost-empty.dat");
	zt_ready();
	zt_wait_term();
	if (fstat(fd, &st) || st.st_size != LEN || st.st_nlink != 0 || (st.st_mode & 07777) != 0640)
		zt_fail("ghost.dat: size %ld nlink %ld mode 0%o", (long)st.st_size, (long)st.st_nlink, st.st_mode & 07777);
	if (lseek(fd, 0, SEEK_CUR) != 4096)
		zt_fail("ghost.dat offset %ld", (long)lseek(fd, 0, SEEK_CUR));
	memset(buf, 0, LEN);
	if (pread(fd, buf, LEN, 0) != LEN)
		zt_fail("ghost.dat short read");
	zt_pattern_expect("ghost.dat content", buf, LEN, 5);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	if (!strstr(link, "/ghost.dat (deleted)"))
		zt_fail("fd %d links to %s", fd, link);
	if (write(fd, "more", 4) != 4 || pread(fd, link, 4, 4096) != 4 || memcmp(link, "more", 4))
		zt_fail("ghost.dat not writable");
	if (fstat(empty, &st) || st.st_size != 0 || st.st_nlink != 0)
		zt_fail("ghost-empty.dat: size %ld nlink %ld", (long)st.st_size, (long)st.st_nlink);
	return zt_finish();
}
