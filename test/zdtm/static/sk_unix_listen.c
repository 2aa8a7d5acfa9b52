// zdtm: desc: unix stream listeners (backlog 7), one bound to a path in a directory of its own, one to an abstract name; each with an accepted connection (data queued both ways) and two connections waiting in its backlog; after restore the listener, accepted and client sockets have their names, the queued data is intact, accept returns exactly the two waiting connections, which carry data both ways, the backlog still holds 8, and new clients connect by name
// zdtm: modes: restore snapshot twice predump criu-dump
/*
 * Not criu-restore nor criu-predump: CRIU 4.2 keeps the name of an accepted
 * socket in its images but restores an accepted connection as a socketpair,
 * so getsockname of the accepted socket and getpeername of its client come
 * back unnamed ("" (2 bytes)) after its restore; the rest (queued data, the
 * waiting connections, the backlog) it restores.
 */
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define BACKLOG 7
#define QLEN 3000

struct listener {
	const char *what;
	struct sockaddr_un addr;
	socklen_t len;
	int l, client, acc, wait[2];
};

static struct listener ls[2];
static char dir[PATH_MAX];

static uint32_t seed(int i, int dir)
{
	return 200 + 10 * i + dir;
}

static int fill(int fd, uint32_t s)
{
	unsigned char buf[QLEN];

	zt_pattern_fill(buf, QLEN, s);
	return write(fd, buf, QLEN) == QLEN ? 0 : -1;
}

static void drain(const char *what, int fd, uint32_t s)
{
	unsigned char buf[QLEN + 1];
	size_t off = 0;

	while (off < QLEN) {
		ssize_t n = recv(fd, buf + off, QLEN - off, MSG_DONTWAIT);
		if (n <= 0) {
			zt_fail("%s: read %zd after %zu of %d queued bytes (errno %d)", what, n, off, QLEN, errno);
			return;
		}
		off += n;
	}
	zt_pattern_expect(what, buf, QLEN, s);
	ssize_t n = recv(fd, buf, 1, MSG_DONTWAIT);
	if (!(n < 0 && errno == EAGAIN))
		zt_fail("%s: recv %zd after the queued data (errno %d), want EAGAIN", what, n, errno);
}

static int connect_to(struct listener *L, int flags)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | flags, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&L->addr, L->len)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* What getsockname or getpeername returns must be exactly L's address. */
static void expect_name(struct listener *L, int fd, int peer, const char *what)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	int r;

	memset(&a, 0, sizeof(a));
	r = peer ? getpeername(fd, (struct sockaddr *)&a, &len) : getsockname(fd, (struct sockaddr *)&a, &len);
	if (r) {
		zt_fail("%s listener: %s of the %s: errno %d", L->what, peer ? "getpeername" : "getsockname", what, errno);
		return;
	}
	if (len != L->len || memcmp(&a, &L->addr, len))
		zt_fail("%s listener: %s of the %s: \"%s%.*s\" (%u bytes), want \"%s%.*s\" (%u bytes)",
			L->what, peer ? "getpeername" : "getsockname", what,
			len > sizeof(sa_family_t) && !a.sun_path[0] ? "@" : "",
			len > sizeof(sa_family_t) ? (int)(len - sizeof(sa_family_t) - !a.sun_path[0]) : 0,
			a.sun_path + !a.sun_path[0], len,
			L->addr.sun_path[0] ? "" : "@", (int)(L->len - sizeof(sa_family_t) - !L->addr.sun_path[0]),
			L->addr.sun_path + !L->addr.sun_path[0], L->len);
}

/* An unbound socket's name is only the family. */
static void expect_unnamed(struct listener *L, int fd, int peer, const char *what)
{
	struct sockaddr_un a;
	socklen_t len = sizeof(a);
	int r = peer ? getpeername(fd, (struct sockaddr *)&a, &len) : getsockname(fd, (struct sockaddr *)&a, &len);

	if (r || len != sizeof(sa_family_t))
		zt_fail("%s listener: %s of the %s: %d, %u bytes, want an unnamed socket", L->what,
			peer ? "getpeername" : "getsockname", what, r, len);
}

/* msg from a to b, then reply from b to a. */
static void ping_pong(struct listener *L, int a, int b, const char *what)
{
	char msg[64], buf[64];
	ssize_t n;

	snprintf(msg, sizeof(msg), "%s %s: ping", L->what, what);
	if (write(a, msg, strlen(msg)) != (ssize_t)strlen(msg) || (n = recv(b, buf, sizeof(buf), 0)) != (ssize_t)strlen(msg) || memcmp(buf, msg, n)) {
		zt_fail("%s listener: %s: data does not go from client to server", L->what, what);
		return;
	}
	snprintf(msg, sizeof(msg), "%s %s: pong", L->what, what);
	if (write(b, msg, strlen(msg)) != (ssize_t)strlen(msg) || (n = recv(a, buf, sizeof(buf), 0)) != (ssize_t)strlen(msg) || memcmp(buf, msg, n))
		zt_fail("%s listener: %s: data does not go from server to client", L->what, what);
}

static void check(int i)
{
	struct listener *L = &ls[i];
	int v = 0, acc[BACKLOG + 2], extra[BACKLOG + 2], nacc = 0, nextra = 0;
	socklen_t vl = sizeof(v);
	char what[64];

	if (getsockopt(L->l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) || v != 1)
		zt_fail("%s listener: SO_ACCEPTCONN %d, want 1", L->what, v);
	expect_name(L, L->l, 0, "listener");
	expect_name(L, L->acc, 0, "accepted socket");
	expect_unnamed(L, L->acc, 1, "accepted socket");
	expect_name(L, L->client, 1, "client");
	expect_unnamed(L, L->client, 0, "client");
	for (int j = 0; j < 2; j++) {
		snprintf(what, sizeof(what), "waiting client %d", j);
		expect_name(L, L->wait[j], 1, what);
	}

	snprintf(what, sizeof(what), "%s listener: data queued to the server", L->what);
	drain(what, L->acc, seed(i, 0));
	snprintf(what, sizeof(what), "%s listener: data queued to the client", L->what);
	drain(what, L->client, seed(i, 1));
	ping_pong(L, L->client, L->acc, "accepted connection");

	/* The backlog: 2 waiting, 8 fit (a queue longer than 7 is full). */
	for (;;) {
		int fd = connect_to(L, SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN)
				zt_fail("%s listener: connect by name after restore: errno %d", L->what, errno);
			break;
		}
		if (nextra == BACKLOG + 1) {
			close(fd);
			zt_fail("%s listener: more than %d connections fit in its backlog", L->what, BACKLOG + 1);
			break;
		}
		extra[nextra++] = fd;
	}
	if (nextra != BACKLOG + 1 - 2)
		zt_fail("%s listener: %d new connections fit beside the 2 waiting ones, want %d (backlog %d)", L->what, nextra, BACKLOG + 1 - 2, BACKLOG);

	if (fcntl(L->l, F_SETFL, O_NONBLOCK))
		zt_fail("%s listener: O_NONBLOCK", L->what);
	for (;;) {
		int fd = accept(L->l, NULL, NULL);
		if (fd < 0) {
			if (errno != EAGAIN)
				zt_fail("%s listener: accept: errno %d", L->what, errno);
			break;
		}
		if (nacc == BACKLOG + 2) {
			close(fd);
			zt_fail("%s listener: more than %d connections accepted", L->what, BACKLOG + 2);
			break;
		}
		acc[nacc++] = fd;
	}
	if (nacc != 2 + nextra)
		zt_fail("%s listener: accepted %d connections, want the 2 waiting ones and %d new", L->what, nacc, nextra);
	if (nacc < 2)
		return;

	/*
	 * The first two accepted are the two that waited before the checkpoint,
	 * in either order: each client tells which it is.
	 */
	int seen[2] = { -1, -1 };
	for (int j = 0; j < 2; j++) {
		char msg[16];
		snprintf(msg, sizeof(msg), "waiter %d", j);
		if (write(L->wait[j], msg, strlen(msg)) != (ssize_t)strlen(msg))
			zt_fail("%s listener: waiting client %d cannot write: errno %d", L->what, j, errno);
	}
	for (int k = 0; k < 2; k++) {
		char buf[16] = "";
		ssize_t n = recv(acc[k], buf, sizeof(buf) - 1, MSG_DONTWAIT);
		int j = -1;
		if (n == 8 && !memcmp(buf, "waiter ", 7) && (buf[7] == '0' || buf[7] == '1'))
			j = buf[7] - '0';
		if (j < 0 || seen[j] >= 0) {
			zt_fail("%s listener: accepted connection %d reads %zd bytes \"%.*s\", want one of the waiting clients", L->what, k, n, n > 0 ? (int)n : 0, buf);
			continue;
		}
		seen[j] = acc[k];
		expect_name(L, acc[k], 0, "accepted waiting connection");
		snprintf(what, sizeof(what), "waiting connection %d", j);
		ping_pong(L, L->wait[j], acc[k], what);
	}
	for (int k = 2; k < nacc; k++) {
		char buf[16];
		if (recv(acc[k], buf, sizeof(buf), MSG_DONTWAIT) != -1 || errno != EAGAIN)
			zt_fail("%s listener: new connection %d has data it was never sent", L->what, k - 2);
	}
	/* The new clients connected in order, and are accepted in that order. */
	for (int k = 0; k < nextra && 2 + k < nacc; k++) {
		snprintf(what, sizeof(what), "new connection %d", k);
		ping_pong(L, extra[k], acc[2 + k], what);
	}
	for (int k = 0; k < nacc; k++)
		close(acc[k]);
	for (int k = 0; k < nextra; k++)
		close(extra[k]);
}

int main(int argc, char **argv)
{
	char cwd[PATH_MAX];

	zt_init(argc, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		return 1;
	snprintf(dir, sizeof(dir), "%s/sk_unix_listen.XXXXXX", cwd);
	if (!mkdtemp(dir))
		zt_skip("mkdtemp %s: %s", dir, strerror(errno));

	ls[0].what = "path";
	ls[0].addr.sun_family = AF_UNIX;
	if (snprintf(ls[0].addr.sun_path, sizeof(ls[0].addr.sun_path), "%s/listen.sock", dir) >= (int)sizeof(ls[0].addr.sun_path)) {
		rmdir(dir);
		zt_skip("working directory too long for a socket path: %s", dir);
	}
	ls[0].len = offsetof(struct sockaddr_un, sun_path) + strlen(ls[0].addr.sun_path) + 1;
	ls[1].what = "abstract";
	ls[1].addr.sun_family = AF_UNIX;
	snprintf(ls[1].addr.sun_path + 1, sizeof(ls[1].addr.sun_path) - 1, "sk_unix_listen.%d", getpid());
	ls[1].len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(ls[1].addr.sun_path + 1);

	for (int i = 0; i < 2; i++) {
		struct listener *L = &ls[i];

		L->l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (L->l < 0 || bind(L->l, (struct sockaddr *)&L->addr, L->len) || listen(L->l, BACKLOG))
			zt_fail("%s listener: socket, bind or listen: %s", L->what, strerror(errno));
		L->client = connect_to(L, 0);
		L->acc = accept(L->l, NULL, NULL);
		if (L->client < 0 || L->acc < 0)
			zt_fail("%s listener: connect or accept: %s", L->what, strerror(errno));
		if (fill(L->client, seed(i, 0)) || fill(L->acc, seed(i, 1)))
			zt_fail("%s listener: queueing data", L->what);
		L->wait[0] = connect_to(L, 0);
		L->wait[1] = connect_to(L, 0);
		if (L->wait[0] < 0 || L->wait[1] < 0)
			zt_fail("%s listener: connecting the waiting clients: %s", L->what, strerror(errno));
	}
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	for (int i = 0; i < 2; i++)
		check(i);

	for (int i = 0; i < 2; i++) {
		close(ls[i].l);
		close(ls[i].client);
		close(ls[i].acc);
		close(ls[i].wait[0]);
		close(ls[i].wait[1]);
	}
	if (unlink(ls[0].addr.sun_path))
		zt_fail("unlink %s: %s", ls[0].addr.sun_path, strerror(errno));
	if (rmdir(dir))
		zt_fail("rmdir %s: %s", dir, strerror(errno));
	return zt_finish();
}
