// zdtm: desc: a unix dgram server bound to a path, with datagrams queued from three clients (an unbound one and one bound to an abstract name using sendto, one connected to it), interleaved, of distinct sizes; after restore recvfrom returns them in order, each with its content and sender address, the server replies to the bound client by name, and the clients still send
// zdtm: modes: restore snapshot twice predump
/*
 * No criu-* mode: CRIU 4.2 keeps no sender address of a queued datagram (its
 * sk-queues image holds none) and restores the queue from one socket, so
 * recvfrom gives the datagrams from the bound client as unnamed ("(unnamed,
 * 0 bytes), want @sk_unix_dgram.PID.client"); contents and order it keeps.
 */
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/un.h>

#define ROUNDS 3
enum { UNBOUND, BOUND, CONNECTED, NCLIENTS };
static const char *names[NCLIENTS] = { "unbound client", "bound client", "connected client" };

static struct sockaddr_un srv_addr, b_addr;
static socklen_t srv_len, b_len;
static int srv, cl[NCLIENTS];
static char dir[PATH_MAX];

static size_t msg_size(int r, int c)
{
	return 1 + 97 * (r * NCLIENTS + c) + 5 * c * c;
}

static uint32_t msg_seed(int r, int c)
{
	return 300 + 10 * r + c;
}

static int send_one(int r, int c)
{
	unsigned char buf[2048];
	size_t len = msg_size(r, c);
	ssize_t n;

	zt_pattern_fill(buf, len, msg_seed(r, c));
	if (c == CONNECTED)
		n = send(cl[c], buf, len, MSG_DONTWAIT);
	else
		n = sendto(cl[c], buf, len, MSG_DONTWAIT, (struct sockaddr *)&srv_addr, srv_len);
	return n == (ssize_t)len ? 0 : -1;
}

static const char *show(const struct sockaddr_un *a, socklen_t len, char *out, size_t size)
{
	if (len <= sizeof(sa_family_t))
		snprintf(out, size, "(unnamed, %u bytes)", len);
	else if (!a->sun_path[0])
		snprintf(out, size, "@%.*s (%u bytes)", (int)(len - sizeof(sa_family_t) - 1), a->sun_path + 1, len);
	else
		snprintf(out, size, "%.*s (%u bytes)", (int)(len - sizeof(sa_family_t)), a->sun_path, len);
	return out;
}

/*
 * want NULL: an unnamed address, which getsockname and getpeername give as
 * the family alone (2 bytes) and recvfrom as nothing (0 bytes).
 */
static void expect_addr_len(const char *what, const struct sockaddr_un *got, socklen_t got_len,
			    const struct sockaddr_un *want, socklen_t want_len, socklen_t unnamed_len)
{
	char g[256], w[256];

	if (!want)
		want_len = unnamed_len;
	if (got_len != want_len || (want && memcmp(got, want, want_len)))
		zt_fail("%s: %s, want %s", what, show(got, got_len, g, sizeof(g)),
			want ? show(want, want_len, w, sizeof(w)) : "an unnamed address");
}

static void expect_addr(const char *what, const struct sockaddr_un *got, socklen_t got_len,
			const struct sockaddr_un *want, socklen_t want_len)
{
	expect_addr_len(what, got, got_len, want, want_len, sizeof(sa_family_t));
}

/* The sender address recvfrom returns. */
static void expect_sender(const char *what, const struct sockaddr_un *got, socklen_t got_len,
			  const struct sockaddr_un *want, socklen_t want_len)
{
	expect_addr_len(what, got, got_len, want, want_len, 0);
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
	expect_addr(what, &a, len, want, want_len);
}

int main(int argc, char **argv)
{
	char cwd[PATH_MAX];

	zt_init(argc, argv);
	if (!getcwd(cwd, sizeof(cwd)))
		return 1;
	snprintf(dir, sizeof(dir), "%s/sk_unix_dgram.XXXXXX", cwd);
	if (!mkdtemp(dir))
		zt_skip("mkdtemp %s: %s", dir, strerror(errno));
	srv_addr.sun_family = AF_UNIX;
	if (snprintf(srv_addr.sun_path, sizeof(srv_addr.sun_path), "%s/server.sock", dir) >= (int)sizeof(srv_addr.sun_path)) {
		rmdir(dir);
		zt_skip("working directory too long for a socket path: %s", dir);
	}
	srv_len = offsetof(struct sockaddr_un, sun_path) + strlen(srv_addr.sun_path) + 1;
	b_addr.sun_family = AF_UNIX;
	snprintf(b_addr.sun_path + 1, sizeof(b_addr.sun_path) - 1, "sk_unix_dgram.%d.client", getpid());
	b_len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(b_addr.sun_path + 1);

	srv = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (srv < 0 || bind(srv, (struct sockaddr *)&srv_addr, srv_len))
		zt_fail("server socket: %s", strerror(errno));
	for (int c = 0; c < NCLIENTS; c++)
		if ((cl[c] = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0)
			zt_fail("client socket: %s", strerror(errno));
	if (bind(cl[BOUND], (struct sockaddr *)&b_addr, b_len))
		zt_fail("binding the client: %s", strerror(errno));
	if (connect(cl[CONNECTED], (struct sockaddr *)&srv_addr, srv_len))
		zt_fail("connecting the client: %s", strerror(errno));
	for (int r = 0; r < ROUNDS; r++)
		for (int c = 0; c < NCLIENTS; c++)
			if (send_one(r, c))
				zt_fail("%s: datagram %d: %s", names[c], r, strerror(errno));
	if (zt_failures())
		return zt_finish();

	zt_ready();
	zt_wait_term();

	expect_name("getsockname of the server", srv, 0, &srv_addr, srv_len);
	expect_name("getsockname of the bound client", cl[BOUND], 0, &b_addr, b_len);
	expect_name("getsockname of the unbound client", cl[UNBOUND], 0, NULL, 0);
	expect_name("getsockname of the connected client", cl[CONNECTED], 0, NULL, 0);
	expect_name("getpeername of the connected client", cl[CONNECTED], 1, &srv_addr, srv_len);

	for (int r = 0; r < ROUNDS; r++)
		for (int c = 0; c < NCLIENTS; c++) {
			unsigned char buf[4096];
			struct sockaddr_un from;
			socklen_t flen = sizeof(from);
			char what[96];

			memset(&from, 0, sizeof(from));
			ssize_t n = recvfrom(srv, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &flen);
			if (n != (ssize_t)msg_size(r, c)) {
				zt_fail("datagram %d: %zd bytes (errno %d), want %zu from the %s (round %d)",
					r * NCLIENTS + c, n, errno, msg_size(r, c), names[c], r);
				continue;
			}
			snprintf(what, sizeof(what), "datagram %d from the %s (round %d)", r * NCLIENTS + c, names[c], r);
			zt_pattern_expect(what, buf, n, msg_seed(r, c));
			snprintf(what, sizeof(what), "sender of datagram %d from the %s", r * NCLIENTS + c, names[c]);
			expect_sender(what, &from, flen, c == BOUND ? &b_addr : NULL, b_len);
		}
	char buf[64];
	if (recv(srv, buf, sizeof(buf), MSG_DONTWAIT) != -1 || errno != EAGAIN)
		zt_fail("the server has more datagrams than were sent");

	/* The server replies to the bound client by its name. */
	static const char reply[] = "reply to the bound client";
	if (sendto(srv, reply, sizeof(reply), 0, (struct sockaddr *)&b_addr, b_len) != sizeof(reply))
		zt_fail("server: sendto the bound client by name: %s", strerror(errno));
	else {
		struct sockaddr_un from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(cl[BOUND], buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
		if (n != sizeof(reply) || memcmp(buf, reply, n))
			zt_fail("bound client: reply of %zd bytes (errno %d)", n, errno);
		else
			expect_sender("sender of the reply", &from, flen, &srv_addr, srv_len);
	}
	/* Every client still sends. */
	for (int c = 0; c < NCLIENTS; c++) {
		char msg[64], what[96];
		struct sockaddr_un from;
		socklen_t flen = sizeof(from);
		ssize_t n;

		snprintf(msg, sizeof(msg), "after restore from the %s", names[c]);
		if (c == CONNECTED)
			n = send(cl[c], msg, strlen(msg), 0);
		else
			n = sendto(cl[c], msg, strlen(msg), 0, (struct sockaddr *)&srv_addr, srv_len);
		if (n != (ssize_t)strlen(msg)) {
			zt_fail("%s: send after restore: %s", names[c], strerror(errno));
			continue;
		}
		memset(&from, 0, sizeof(from));
		n = recvfrom(srv, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
		if (n != (ssize_t)strlen(msg) || memcmp(buf, msg, n)) {
			zt_fail("server: datagram from the %s after restore: %zd bytes (errno %d)", names[c], n, errno);
			continue;
		}
		snprintf(what, sizeof(what), "sender of the datagram from the %s after restore", names[c]);
		expect_sender(what, &from, flen, c == BOUND ? &b_addr : NULL, b_len);
	}

	close(srv);
	for (int c = 0; c < NCLIENTS; c++)
		close(cl[c]);
	if (unlink(srv_addr.sun_path))
		zt_fail("unlink %s: %s", srv_addr.sun_path, strerror(errno));
	if (rmdir(dir))
		zt_fail("rmdir %s: %s", dir, strerror(errno));
	return zt_finish();
}
