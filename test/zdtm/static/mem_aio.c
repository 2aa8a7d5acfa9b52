// zdtm: desc: an AIO context (io_setup) with a read completed and one event reaped, one left in the ring: after restore the context has the same id (its ring's address), io_getevents returns the left event, and a new read submitted on it completes with the file's data
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <time.h>

static int submit_read(aio_context_t ctx, int fd, void *buf, size_t len, off_t off, uint64_t data)
{
	struct iocb cb = {.aio_data = data, .aio_lio_opcode = IOCB_CMD_PREAD, .aio_fildes = fd,
			  .aio_buf = (uintptr_t)buf, .aio_nbytes = len, .aio_offset = off};
	struct iocb *cbp = &cb;

	return syscall(SYS_io_submit, ctx, 1, &cbp) == 1 ? 0 : -1;
}

static int get_event(aio_context_t ctx, struct io_event *ev)
{
	struct timespec ts = {5, 0};

	return syscall(SYS_io_getevents, ctx, 1, 1, ev, &ts) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static unsigned char data[8192], buf[3][4096];
	aio_context_t ctx = 0, id;
	struct io_event ev;
	int fd;

	zt_init(argc, argv);
	fd = open("aio.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
	zt_pattern_fill(data, sizeof(data), 1800);
	if (fd < 0 || write(fd, data, sizeof(data)) != sizeof(data))
		return 1;
	if (syscall(SYS_io_setup, 8, &ctx))
		return 1;
	id = ctx;
	if (submit_read(ctx, fd, buf[0], 4096, 0, 1) || submit_read(ctx, fd, buf[1], 4096, 4096, 2))
		zt_fail("io_submit before the dump: %m");
	if (get_event(ctx, &ev) || ev.data != 1 || ev.res != 4096)
		zt_fail("first event: data %llu res %lld", (unsigned long long)ev.data, (long long)ev.res);
	/* the second read completes too; its event stays in the ring */
	for (int i = 0; i < 100; i++) {
		struct { unsigned id, nr, head, tail; } *ring = (void *)ctx;
		if (ring->head != ring->tail)
			break;
		usleep(10000);
	}
	zt_ready();
	zt_wait_term();
	if (ctx != id)
		zt_fail("context id changed");
	if (get_event(ctx, &ev) || ev.data != 2 || ev.res != 4096)
		zt_fail("event left in the ring: data %llu res %lld: %m", (unsigned long long)ev.data, (long long)ev.res);
	if (memcmp(buf[1], data + 4096, 4096))
		zt_fail("second read's data differs");
	if (submit_read(ctx, fd, buf[2], 4096, 4096, 3))
		zt_fail("io_submit after restore: %m");
	else if (get_event(ctx, &ev) || ev.data != 3 || ev.res != 4096 || memcmp(buf[2], data + 4096, 4096))
		zt_fail("new read after restore: data %llu res %lld", (unsigned long long)ev.data, (long long)ev.res);
	if (syscall(SYS_io_destroy, ctx))
		zt_fail("io_destroy: %m");
	return zt_finish();
}
