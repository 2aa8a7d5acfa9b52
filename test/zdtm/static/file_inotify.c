// zdtm: desc: inotify: a non-blocking instance watching a directory (create, delete, moved-to), a file (modify, close-write) and a third file (attrib) whose descriptor comes after a removed watch's (1, 2, 4), and a blocking close-on-exec instance watching the directory for everything, an epoll over both; after restore nothing is queued, the watches have the same descriptors and masks (fdinfo), and events on the watched files arrive with them
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

/* file_inotify_flags sets them: CRIU 4.2 restores neither. */
#ifndef ONESHOT
#define ONESHOT 0
#define EXCL_UNLINK 0
#endif

/* Reads the next event of fd into ev (and its name); 0 when none. */
static int next_event(int fd, struct inotify_event *ev, char *name)
{
	static char buf[4096] __attribute__((aligned(8)));
	static int len, off;

	if (off >= len) {
		len = read(fd, buf, sizeof buf);
		off = 0;
		if (len <= 0)
			return 0;
	}
	struct inotify_event *e = (struct inotify_event *)(buf + off);
	*ev = *e;
	strcpy(name, e->len ? e->name : "");
	off += sizeof *e + e->len;
	return 1;
}

static void expect(int fd, int wd, uint32_t mask, const char *name)
{
	struct inotify_event ev;
	char n[256];

	if (!next_event(fd, &ev, n))
		zt_fail("no event, want wd %d mask %#x %s", wd, mask, name);
	else if (ev.wd != wd || ev.mask != mask || strcmp(n, name))
		zt_fail("event wd %d mask %#x name '%s', want wd %d mask %#x name '%s'", ev.wd, ev.mask, n, wd, mask, name);
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN }, evs[4];
	int in, in2, ep, wd1, wd2, wd3, wd4, wdb, n, q;
	char buf[256];

	zt_init(argc, argv);
	if (mkdir("watched", 0755) || close(open("watched/f", O_CREAT | O_WRONLY, 0644)) ||
	    close(open("watched/g", O_CREAT | O_WRONLY, 0644)) || close(open("watched/h", O_CREAT | O_WRONLY, 0644)))
		return 1;
	in = inotify_init1(IN_NONBLOCK);
	in2 = inotify_init1(IN_CLOEXEC);
	ep = epoll_create1(0);
	if (in < 0 || in2 < 0 || ep < 0)
		return 1;
	wd1 = inotify_add_watch(in, "watched", IN_CREATE | IN_DELETE | IN_MOVED_TO);
	wd2 = inotify_add_watch(in, "watched/f", IN_MODIFY | IN_CLOSE_WRITE);
	wd3 = inotify_add_watch(in, "watched/g", IN_ATTRIB);
	wd4 = inotify_add_watch(in, "watched/h", IN_ATTRIB | ONESHOT);
	wdb = inotify_add_watch(in2, "watched", IN_ALL_EVENTS | EXCL_UNLINK);
	if (wd1 != 1 || wd2 != 2 || wd3 != 3 || wd4 != 4 || wdb != 1)
		return 1;
	if (inotify_rm_watch(in, wd3))
		return 1;
	/* Read the IN_IGNORED the removal queued: dump refuses queued events. */
	while (read(in, buf, sizeof buf) > 0)
		;
	ev.data.u64 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev);
	ev.data.u64 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, in2, &ev);
	zt_ready();
	zt_wait_term();

	if (ioctl(in, FIONREAD, &q) || q != 0 || ioctl(in2, FIONREAD, &q) || q != 0)
		zt_fail("events queued after restore");
	if ((n = epoll_wait(ep, evs, 4, 0)) != 0)
		zt_fail("epoll reports %d ready before any event", n);
	if (!(fcntl(in, F_GETFL) & O_NONBLOCK) || (fcntl(in2, F_GETFL) & O_NONBLOCK))
		zt_fail("O_NONBLOCK not as set");
	if ((fcntl(in, F_GETFD) & FD_CLOEXEC) || !(fcntl(in2, F_GETFD) & FD_CLOEXEC))
		zt_fail("close-on-exec not as set");

	close(open("watched/new", O_CREAT | O_WRONLY, 0644));
	if ((n = epoll_wait(ep, evs, 4, 1000)) != 2)
		zt_fail("epoll reports %d ready after a create, want both instances", n);
	expect(in, wd1, IN_CREATE, "new");
	expect(in2, wdb, IN_CREATE, "new");
	expect(in2, wdb, IN_OPEN, "new");
	expect(in2, wdb, IN_CLOSE_WRITE, "new");
	int f = open("watched/f", O_WRONLY);
	if (f < 0 || write(f, "x", 1) != 1 || close(f))
		zt_fail("write watched/f");
	expect(in, wd2, IN_MODIFY, "");
	expect(in, wd2, IN_CLOSE_WRITE, "");
	if (chmod("watched/g", 0600) || chmod("watched/h", 0600))
		zt_fail("chmod");
	expect(in, wd4, IN_ATTRIB, "");
	if (ONESHOT)
		expect(in, wd4, IN_IGNORED, "");
	if (read(in, buf, sizeof buf) != -1)
		zt_fail("more events than expected on the first instance");
	/* A new watch gets the next descriptor after the last one given. */
	if ((n = inotify_add_watch(in, "watched/g", IN_ATTRIB)) != 5)
		zt_fail("a new watch got descriptor %d, want 5", n);
	return zt_finish();
}
