// zdtm: desc: a semaphore eventfd at 3: after restore each read takes 1, three times, then it would block. Not in the CRIU modes: CRIU 4.2 keeps no EFD_SEMAPHORE (its eventfd entry has the counter and the status flags only), so across CRIU the eventfd comes back a plain one
// zdtm: modes: restore snapshot twice predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <fcntl.h>
#include <stdint.h>
#include <sys/eventfd.h>

int main(int argc, char **argv)
{
	uint64_t v = 0;

	zt_init(argc, argv);
	int fd = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	if (fd < 0)
		return 1;
	zt_ready();
	zt_wait_term();
	for (int i = 0; i < 3; i++)
		if (read(fd, &v, 8) != 8 || v != 1)
			zt_fail("read %d: %llu, want 1", i, (unsigned long long)v);
	if (read(fd, &v, 8) != -1)
		zt_fail("counts past 3");
	return zt_finish();
}
