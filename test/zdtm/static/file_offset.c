// zdtm: desc: regular files: offsets, O_APPEND, O_NOATIME, O_SYNC, FD_CLOEXEC, a dup sharing its offset, a second open of the same file with its own offset, a path with spaces, fds at high numbers
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/stat.h>

#define ACCMODE_FLAGS (O_ACCMODE | O_APPEND | O_NOATIME | O_SYNC | O_NONBLOCK)

struct fcase {
	const char *name;
	int fd, flags, cloexec;
	off_t pos;
};

static unsigned char data[10000];

static int mk(const char *path, size_t len, uint32_t seed)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	zt_pattern_fill(data, len, seed);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		return -1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct fcase c[6];
	int n = 0;

	zt_init(argc, argv);
	mkdir("dir with space", 0755);
	if (mk("rw.dat", 10000, 1) || mk("append.dat", 500, 2) || mk("dir with space/ro.dat", 4000, 3))
		return 1;

	c[n] = (struct fcase){ "rw.dat", open("rw.dat", O_RDWR), O_RDWR, 0, 1234 };
	n++;
	c[n] = (struct fcase){ "dup of rw.dat", dup(c[0].fd), O_RDWR, 0, 1234 };
	n++;
	c[n] = (struct fcase){ "rw.dat again", open("rw.dat", O_RDONLY | O_CLOEXEC), O_RDONLY, 1, 555 };
	n++;
	c[n] = (struct fcase){ "append.dat", open("append.dat", O_WRONLY | O_APPEND | O_SYNC), O_WRONLY | O_APPEND | O_SYNC, 0, 10 };
	n++;
	c[n] = (struct fcase){ "ro.dat", open("dir with space/ro.dat", O_RDONLY | O_NOATIME | O_NONBLOCK),
			       O_RDONLY | O_NOATIME | O_NONBLOCK, 0, 77 };
	n++;
	c[n] = (struct fcase){ "ro.dat at fd 300", 300, O_RDONLY | O_NOATIME | O_NONBLOCK, 1, 77 };
	if (dup3(c[4].fd, 300, O_CLOEXEC) != 300)
		zt_fail("dup3 to 300");
	n++;
	for (int i = 0; i < n; i++)
		if (c[i].fd < 0)
			zt_fail("open %s", c[i].name);
	lseek(c[0].fd, 1234, SEEK_SET);
	lseek(c[2].fd, 555, SEEK_SET);
	lseek(c[3].fd, 10, SEEK_SET);
	lseek(c[4].fd, 77, SEEK_SET);
	zt_ready();
	zt_wait_term();
	for (int i = 0; i < n; i++) {
		int fl = fcntl(c[i].fd, F_GETFL), fdf = fcntl(c[i].fd, F_GETFD);
		off_t pos = lseek(c[i].fd, 0, SEEK_CUR);

		if ((fl & ACCMODE_FLAGS) != c[i].flags)
			zt_fail("%s (fd %d): flags 0%o, want 0%o", c[i].name, c[i].fd, fl & ACCMODE_FLAGS, c[i].flags);
		if (!!(fdf & FD_CLOEXEC) != c[i].cloexec)
			zt_fail("%s (fd %d): FD_CLOEXEC is %d", c[i].name, c[i].fd, !!(fdf & FD_CLOEXEC));
		if (pos != c[i].pos)
			zt_fail("%s (fd %d): offset %ld, want %ld", c[i].name, c[i].fd, (long)pos, (long)c[i].pos);
	}
	/* A dup shares the offset; a second open does not. */
	lseek(c[0].fd, 2000, SEEK_SET);
	if (lseek(c[1].fd, 0, SEEK_CUR) != 2000)
		zt_fail("dup does not share the file offset any more");
	if (lseek(c[2].fd, 0, SEEK_CUR) != 555)
		zt_fail("second open of rw.dat shares the offset of the first");
	/* Append mode appends, whatever the offset. */
	if (write(c[3].fd, "Z", 1) != 1)
		zt_fail("write append.dat");
	struct stat st;
	stat("append.dat", &st);
	if (st.st_size != 501)
		zt_fail("append.dat is %ld bytes after an append, want 501", (long)st.st_size);
	/* Contents still readable through the restored descriptors. */
	unsigned char buf[10000];
	zt_pattern_fill(data, 10000, 1);
	if (pread(c[2].fd, buf, 10000, 0) != 10000 || memcmp(buf, data, 10000))
		zt_fail("rw.dat content differs");
	zt_pattern_fill(data, 4000, 3);
	if (read(300, buf, 100) != 100 || memcmp(buf, data + 77, 100))
		zt_fail("ro.dat read at its offset differs");
	return zt_finish();
}
