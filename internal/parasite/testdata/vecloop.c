/* Keeps a pattern in r12-r15 and in the whole of ymm7 across a loop that
 * sleeps 10 ms with raw syscalls and writes a counter to argv[1]. If any of
 * them changes under it, it exits 3. No libc runs inside the loop, so
 * nothing but an outside change can alter these registers. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

unsigned long counter;
int progress_fd;
struct { long sec, nsec; } tick = { 0, 10 * 1000 * 1000 };
unsigned char ymm_pattern[32] __attribute__((aligned(32))) = {
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x5a,
};

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	progress_fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (progress_fd < 0)
		return 2;
	__asm__ volatile(
		"vmovdqa ymm_pattern(%%rip), %%ymm7\n\t"
		"movabs $0x1212121212121212, %%r12\n\t"
		"movabs $0x1313131313131313, %%r13\n\t"
		"movabs $0x1414141414141414, %%r14\n\t"
		"movabs $0x1515151515151515, %%r15\n\t"
		"1:\n\t"
		"movabs $0x1212121212121212, %%rax\n\tcmp %%rax, %%r12\n\tjne 9f\n\t"
		"movabs $0x1313131313131313, %%rax\n\tcmp %%rax, %%r13\n\tjne 9f\n\t"
		"movabs $0x1414141414141414, %%rax\n\tcmp %%rax, %%r14\n\tjne 9f\n\t"
		"movabs $0x1515151515151515, %%rax\n\tcmp %%rax, %%r15\n\tjne 9f\n\t"
		"vpcmpeqb ymm_pattern(%%rip), %%ymm7, %%ymm0\n\t"
		"vpmovmskb %%ymm0, %%eax\n\t"
		"cmp $-1, %%eax\n\tjne 9f\n\t"
		"incq counter(%%rip)\n\t"
		/* pwrite(progress_fd, &counter, 8, 0) */
		"mov $18, %%eax\n\tmovslq progress_fd(%%rip), %%rdi\n\tlea counter(%%rip), %%rsi\n\t"
		"mov $8, %%edx\n\txor %%r10d, %%r10d\n\tsyscall\n\t"
		/* nanosleep(&tick, NULL) */
		"mov $35, %%eax\n\tlea tick(%%rip), %%rdi\n\txor %%esi, %%esi\n\tsyscall\n\t"
		"jmp 1b\n\t"
		"9:\n\t"
		"mov $231, %%eax\n\tmov $3, %%edi\n\tsyscall\n\t"
		:
		:
		: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		  "xmm0", "xmm7", "memory", "cc");
	return 0;
}
