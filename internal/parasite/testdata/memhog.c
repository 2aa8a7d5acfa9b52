/* Maps argv[1] MiB of anonymous memory, touches every page, prints the
 * address, and waits to be killed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t len = (size_t)atol(argv[1]) << 20;
	unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t i;

	if (p == MAP_FAILED)
		return 2;
	for (i = 0; i < len; i += 4096)
		memset(p + i, (int)(i >> 12), 4096);
	printf("%#lx\n", (unsigned long)p);
	fflush(stdout);
	for (;;)
		pause();
}
