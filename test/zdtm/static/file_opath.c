// zdtm: desc: O_PATH fds: on a regular file (with an offset-less path use), a directory (used with openat), a symlink itself (O_PATH|O_NOFOLLOW), a fifo and a character device (neither opened for I/O)
// zdtm: modes: restore snapshot twice predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

struct pcase {
	const char *name, *path;
	int fd, flags;
	mode_t type;
};

/* The path /proc says fd points at, relative to the test's directory. */
static void check_link(struct pcase *c, const char *cwd)
{
	char link[64], got[PATH_MAX], want[PATH_MAX];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", c->fd);
	n = readlink(link, got, sizeof(got) - 1);
	if (n < 0) {
		zt_fail("%s (fd %d): readlink: %m", c->name, c->fd);
		return;
	}
	got[n] = 0;
	if (c->path[0] == '/')
		snprintf(want, sizeof(want), "%s", c->path);
	else
		snprintf(want, sizeof(want), "%s/%s", cwd, c->path);
	if (strcmp(got, want))
		zt_fail("%s (fd %d) points at %s, want %s", c->name, c->fd, got, want);
}

int main(int argc, char **argv)
{
	struct pcase c[5];
	char cwd[PATH_MAX], buf[64];
	struct stat st;
	int n = 0, fd;

	zt_init(argc, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		return 1;
	mkdir("dir", 0755);
	fd = open("dir/inner", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "inner data", 10) != 10)
		return 1;
	close(fd);
	if (symlink("dir/inner", "link") || mkfifo("fifo", 0644))
		return 1;
	c[n++] = (struct pcase){ "regular file", "dir/inner", open("dir/inner", O_PATH), O_PATH, S_IFREG };
	c[n++] = (struct pcase){ "directory", "dir", open("dir", O_PATH | O_DIRECTORY | O_CLOEXEC), O_PATH | O_DIRECTORY, S_IFDIR };
	c[n++] = (struct pcase){ "symlink", "link", open("link", O_PATH | O_NOFOLLOW), O_PATH | O_NOFOLLOW, S_IFLNK };
	/* Neither blocks on open nor opens the device's driver: O_PATH. */
	c[n++] = (struct pcase){ "fifo", "fifo", open("fifo", O_PATH), O_PATH, S_IFIFO };
	c[n++] = (struct pcase){ "device", "/dev/null", open("/dev/null", O_PATH), O_PATH, S_IFCHR };
	for (int i = 0; i < n; i++)
		if (c[i].fd < 0)
			zt_fail("open %s: %m", c[i].name);
	zt_ready();
	zt_wait_term();
	for (int i = 0; i < n; i++) {
		int fl = fcntl(c[i].fd, F_GETFL);

		if (fl < 0) {
			zt_fail("%s (fd %d): F_GETFL: %m", c[i].name, c[i].fd);
			continue;
		}
		if (!(fl & O_PATH))
			zt_fail("%s (fd %d): flags 0%o lack O_PATH", c[i].name, c[i].fd, fl);
		if (fstat(c[i].fd, &st))
			zt_fail("%s (fd %d): fstat: %m", c[i].name, c[i].fd);
		else if ((st.st_mode & S_IFMT) != c[i].type)
			zt_fail("%s (fd %d): file type 0%o, want 0%o", c[i].name, c[i].fd, st.st_mode & S_IFMT, c[i].type);
		check_link(&c[i], cwd);
		/* O_PATH: no I/O through the fd itself. */
		if (read(c[i].fd, buf, 1) != -1 || errno != EBADF)
			zt_fail("%s (fd %d): read did not fail with EBADF", c[i].name, c[i].fd);
	}
	if (!!(fcntl(c[1].fd, F_GETFD) & FD_CLOEXEC) != 1 || !!(fcntl(c[0].fd, F_GETFD) & FD_CLOEXEC) != 0)
		zt_fail("FD_CLOEXEC not kept on O_PATH fds");
	/* The directory fd still anchors openat. */
	fd = openat(c[1].fd, "inner", O_RDONLY);
	if (fd < 0 || read(fd, buf, 10) != 10 || memcmp(buf, "inner data", 10))
		zt_fail("openat(directory O_PATH fd, \"inner\") does not read the file");
	/* The symlink fd is the link, not its target. */
	n = readlinkat(c[2].fd, "", buf, sizeof(buf) - 1);
	if (n != 9 || memcmp(buf, "dir/inner", 9))
		zt_fail("readlinkat(symlink O_PATH fd, \"\") gives %d bytes, want dir/inner", n);
	/* The regular file reopens through /proc for reading. */
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", c[0].fd);
	fd = open(buf, O_RDONLY);
	if (fd < 0 || read(fd, buf, 10) != 10 || memcmp(buf, "inner data", 10))
		zt_fail("reopen of the regular file's O_PATH fd does not read it");
	if (fstat(c[4].fd, &st) == 0 && st.st_rdev != makedev(1, 3))
		zt_fail("device fd is not /dev/null");
	return zt_finish();
}
