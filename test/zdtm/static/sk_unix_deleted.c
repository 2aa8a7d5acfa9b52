// zdtm: desc: unix sockets bound to paths that were then unlinked: a dgram socket with a client connected to it and two datagrams queued from it, and a stream listener with a connection waiting in its backlog; after restore both keep their names (getsockname, the client's getpeername) while the paths stay gone, the queued datagrams and new ones arrive, and the listener accepts the waiting connection, which carries data both ways
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

static char dir[PATH_MAX];
static struct sockaddr_un d_addr, l_addr;
static socklen_t d_len, l_len;

static const char dg1[] = "queued before the checkpoint", dg2[] = "and a second one";

static int set_path(struct sockaddr_un *a, socklen_t *len, const char *name)
{
	a->sun_family = AF_UNIX;
	if (snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name) >= (int)sizeof(a->sun_path))
		return -1;
	*len = offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1;
	return 0;
}

static void expect_name(const char *what, int fd, int peer, const struct sockaddr_un *want, socklen_t want_len)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);

	memset(&a, 0, sizeof(a));
	if (peer ? getpeername(fd, (struct sockaddr *)&a, &len) : getsockname(fd, (struct sockaddr *)&a, &len)) {
		zt_fail("%s: errno %d", what, errno);
		return;
	}
	if (len != want_len || memcmp(&a, want, len))
		zt_fail("%s: \"%.*s\" (%u bytes), want \"%s\" (%u bytes)", what,
			len > sizeof(sa_family_t) ? (int)(len - sizeof(sa_family_t)) : 0, a.sun_path, len,
			want->sun_path, want_len);
}

static void expect_gone(const struct sockaddr_un *a)
{
	struct stat st;

	if (lstat(a->sun_path, &st) == 0 || errno != ENOENT)
		zt_fail("%s: lstat says %s, want ENOENT", a->sun_path, errno == ENOENT ? "it exists" : strerror(errno));
}

static void expect_dgram(const char *what, int fd, const char *msg, size_t len)
{
	char buf[128];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);

	if (n != (ssize_t)len || memcmp(buf, msg, len))
		zt_fail("%s: %zd bytes (errno %d), want \"%s\"", what, n, errno, msg);
}

int main(int argc, char **argv)
{
	char cwd[PATH_MAX], buf[64];
	int d, k, l, w;

	zt_init(argc, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		return 1;
	snprintf(dir, sizeof(dir), "%s/sk_unix_deleted.XXXXXX", cwd);
	if (!mkdtemp(dir))
		zt_skip("mkdtemp %s: %s", dir, strerror(errno));
	if (set_path(&d_addr, &d_len, "dgram.sock") || set_path(&l_addr, &l_len, "listen.sock")) {
		rmdir(dir);
		zt_skip("working directory too long for a socket path: %s", dir);
	}

	d = socket(AF_UNIX, SOCK_DGRAM, 0);
	k = socket(AF_UNIX, SOCK_DGRAM, 0);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	w = socket(AF_UNIX, SOCK_STREAM, 0);
	if (d < 0 || k < 0 || l < 0 || w < 0)
		zt_skip("socket: %s", strerror(errno));
	if (bind(d, (struct sockaddr *)&d_addr, d_len) || connect(k, (struct sockaddr *)&d_addr, d_len))
		zt_fail("dgram socket: bind or connect: %s", strerror(errno));
	if (send(k, dg1, sizeof(dg1), 0) != sizeof(dg1) || send(k, dg2, sizeof(dg2), 0) != sizeof(dg2))
		zt_fail("dgram socket: queueing: %s", strerror(errno));
	if (bind(l, (struct sockaddr *)&l_addr, l_len) || listen(l, 7) || connect(w, (struct sockaddr *)&l_addr, l_len))
		zt_fail("listener: bind, listen or connect: %s", strerror(errno));
	if (unlink(d_addr.sun_path) || unlink(l_addr.sun_path))
		zt_fail("unlink: %s", strerror(errno));
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	expect_gone(&d_addr);
	expect_gone(&l_addr);
	DIR *dh = opendir(dir);
	struct dirent *de;
	if (!dh)
		zt_fail("opendir %s: %s", dir, strerror(errno));
	else {
		while ((de = readdir(dh)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				zt_fail("%s holds %s, want nothing", dir, de->d_name);
		closedir(dh);
	}

	/* The dgram socket: its name, its queue, and new data. */
	expect_name("getsockname of the deleted dgram socket", d, 0, &d_addr, d_len);
	expect_name("getpeername of its connected client", k, 1, &d_addr, d_len);
	expect_dgram("first queued datagram", d, dg1, sizeof(dg1));
	expect_dgram("second queued datagram", d, dg2, sizeof(dg2));
	if (recv(d, buf, sizeof(buf), MSG_DONTWAIT) != -1 || errno != EAGAIN)
		zt_fail("the dgram socket has more than was queued");
	static const char dg3[] = "sent after restore";
	if (send(k, dg3, sizeof(dg3), 0) != sizeof(dg3))
		zt_fail("connected client: send after restore: %s", strerror(errno));
	else
		expect_dgram("datagram sent after restore", d, dg3, sizeof(dg3));

	/* The listener: its name, the waiting connection, and no name to connect to. */
	expect_name("getsockname of the deleted listener", l, 0, &l_addr, l_len);
	expect_name("getpeername of the waiting client", w, 1, &l_addr, l_len);
	int v = 0;
	socklen_t vl = sizeof(v);
	if (getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) || v != 1)
		zt_fail("listener: SO_ACCEPTCONN %d, want 1", v);
	if (fcntl(l, F_SETFL, O_NONBLOCK))
		zt_fail("listener: O_NONBLOCK: %s", strerror(errno));
	int a = accept(l, NULL, NULL);
	if (a < 0)
		zt_fail("listener: accept of the waiting connection: %s", strerror(errno));
	else {
		static const char up[] = "client to server", down[] = "server to client";
		ssize_t n;
		if (write(w, up, sizeof(up)) != sizeof(up) || (n = recv(a, buf, sizeof(buf), 0)) != sizeof(up) || memcmp(buf, up, n))
			zt_fail("waiting connection: data does not go from client to server");
		if (write(a, down, sizeof(down)) != sizeof(down) || (n = recv(w, buf, sizeof(buf), 0)) != sizeof(down) || memcmp(buf, down, n))
			zt_fail("waiting connection: data does not go from server to client");
		close(a);
	}
	if (accept(l, NULL, NULL) != -1 || errno != EAGAIN)
		zt_fail("listener: a second connection was waiting (errno %d)", errno);
	int c = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&l_addr, l_len) != -1 || errno != ENOENT)
		zt_fail("connect to the deleted path: errno %d, want ENOENT", errno);
	close(c);

	close(d);
	close(k);
	close(l);
	close(w);
	if (rmdir(dir))
		zt_fail("rmdir %s: %s", dir, strerror(errno));
	return zt_finish();
}
