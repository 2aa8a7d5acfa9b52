// zdtm: desc: fanotify: a FAN_CLASS_NOTIF group with O_NONBLOCK event flags, an inode mark on a file (modify, close-write, open) and a mount mark on the test directory's mount ignoring opens (FAN_MARK_IGNORED_SURV_MODIFY), an epoll over the group; after restore nothing is queued, the marks are the same (fdinfo), and writing the file gives its events (the open ignored through the mount mark) on the restored group, which epoll reports
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

/* Counts the lines of /proc/self/fdinfo/fd that start with prefix. */
static int fdinfo_lines(int fd, const char *prefix)
{
	char path[64], buf[4096], *l;
	int n = 0;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if (zt_read_file(path, buf, sizeof buf) < 0)
		return -1;
	for (l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, prefix, strlen(prefix)))
			n++;
	return n;
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[2];
	char buf[4096] __attribute__((aligned(8)));
	struct stat st, est;
	uint64_t got = 0;
	int fan, ep, n, q;

	zt_init(argc, argv);
	if (close(open("marked", O_CREAT | O_WRONLY, 0644)) || stat("marked", &st))
		return 1;
	fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK, O_RDONLY | O_NONBLOCK);
	if (fan < 0)
		zt_skip("fanotify_init: %m");
	if (fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE | FAN_OPEN, AT_FDCWD, "marked"))
		return 1;
	if (fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_MOUNT | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_OPEN,
			  AT_FDCWD, "."))
		return 1;
	ep = epoll_create1(0);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fan, &ev))
		return 1;
	zt_ready();
	zt_wait_term();

	if (fdinfo_lines(fan, "fanotify ino:") != 1 || fdinfo_lines(fan, "fanotify mnt_id:") != 1)
		zt_fail("fdinfo lists %d inode and %d mount marks, want 1 and 1", fdinfo_lines(fan, "fanotify ino:"),
			fdinfo_lines(fan, "fanotify mnt_id:"));
	if (ioctl(fan, FIONREAD, &q) || q != 0)
		zt_fail("%d bytes of events queued after restore", q);
	if ((n = epoll_wait(ep, evs, 2, 0)) != 0)
		zt_fail("epoll reports %d ready before any event", n);
	if (!(fcntl(fan, F_GETFL) & O_NONBLOCK))
		zt_fail("O_NONBLOCK lost");

	int f = open("marked", O_WRONLY);
	if (f < 0 || write(f, "x", 1) != 1 || close(f))
		zt_fail("write marked");
	if ((n = epoll_wait(ep, evs, 2, 1000)) != 1)
		zt_fail("epoll reports %d ready after a write, want 1", n);
	while ((n = read(fan, buf, sizeof buf)) > 0) {
		struct fanotify_event_metadata *m = (struct fanotify_event_metadata *)buf;

		for (; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
			if (m->vers != FANOTIFY_METADATA_VERSION || m->fd < 0) {
				zt_fail("event version %d fd %d", m->vers, m->fd);
				continue;
			}
			if (fstat(m->fd, &est) || est.st_ino != st.st_ino || est.st_dev != st.st_dev)
				zt_fail("an event on inode %lu, want %lu", (unsigned long)est.st_ino, (unsigned long)st.st_ino);
			if ((fcntl(m->fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) != (O_RDONLY | O_NONBLOCK))
				zt_fail("event fd flags %#o, want O_RDONLY|O_NONBLOCK", fcntl(m->fd, F_GETFL));
			if (m->pid != getpid())
				zt_fail("an event of pid %d", m->pid);
			got |= m->mask;
			close(m->fd);
		}
	}
	if (n < 0 && errno != EAGAIN)
		zt_fail("read fanotify: %m");
	if (got != (FAN_MODIFY | FAN_CLOSE_WRITE))
		zt_fail("events %#llx, want %#x (the open ignored by the mount mark)", (unsigned long long)got,
			FAN_MODIFY | FAN_CLOSE_WRITE);
	return zt_finish();
}
