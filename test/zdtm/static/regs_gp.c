// zdtm: desc: general-purpose registers (rax..rdx, rsi, rdi, r8..r15) hold patterns in a busy asm loop across checkpoint/restore; compared after SIGTERM
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <inttypes.h>
#include <stdint.h>

#define NREG 14
static const char *names[NREG] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15" };
uint64_t in[NREG], out[NREG];

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	for (int i = 0; i < NREG; i++)
		in[i] = 0x0123456789abcdefULL * (i + 3) ^ ((uint64_t)0xa5a5 << (i * 3));
	zt_ready();
	asm volatile(
		"mov in+0(%%rip), %%rax\n"
		"mov in+8(%%rip), %%rbx\n"
		"mov in+16(%%rip), %%rcx\n"
		"mov in+24(%%rip), %%rdx\n"
		"mov in+32(%%rip), %%rsi\n"
		"mov in+40(%%rip), %%rdi\n"
		"mov in+48(%%rip), %%r8\n"
		"mov in+56(%%rip), %%r9\n"
		"mov in+64(%%rip), %%r10\n"
		"mov in+72(%%rip), %%r11\n"
		"mov in+80(%%rip), %%r12\n"
		"mov in+88(%%rip), %%r13\n"
		"mov in+96(%%rip), %%r14\n"
		"mov in+104(%%rip), %%r15\n"
		"1: pause\n"
		"cmpl $0, zt_stop(%%rip)\n"
		"je 1b\n"
		"mov %%rax, out+0(%%rip)\n"
		"mov %%rbx, out+8(%%rip)\n"
		"mov %%rcx, out+16(%%rip)\n"
		"mov %%rdx, out+24(%%rip)\n"
		"mov %%rsi, out+32(%%rip)\n"
		"mov %%rdi, out+40(%%rip)\n"
		"mov %%r8, out+48(%%rip)\n"
		"mov %%r9, out+56(%%rip)\n"
		"mov %%r10, out+64(%%rip)\n"
		"mov %%r11, out+72(%%rip)\n"
		"mov %%r12, out+80(%%rip)\n"
		"mov %%r13, out+88(%%rip)\n"
		"mov %%r14, out+96(%%rip)\n"
		"mov %%r15, out+104(%%rip)\n"
		:
		:
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		  "memory", "cc");
	for (int i = 0; i < NREG; i++)
		if (in[i] != out[i])
			zt_fail("%s is 0x%016" PRIx64 ", want 0x%016" PRIx64, names[i], out[i], in[i]);
	return zt_finish();
}
