// zdtm: desc: AVX state: ymm0..ymm15 hold 256-bit patterns and MXCSR/x87 control words are non-default in a busy asm loop; compared after SIGTERM
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: needs: cpu:avx
// zdtm: cflags: -mavx
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <stdint.h>
#include <string.h>

uint8_t yin[16][32] __attribute__((aligned(32)));
uint8_t yout[16][32] __attribute__((aligned(32)));
uint32_t mxcsr_in = 0x7f80 | 0x6000; /* all exceptions masked, round toward zero */
uint32_t mxcsr_out;
uint16_t fcw_in = 0x0e7f; /* round toward zero, extended precision */
uint16_t fcw_out;

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	zt_pattern_fill(yin, sizeof(yin), 0xa7);
	zt_ready();
	asm volatile(
		"ldmxcsr mxcsr_in(%%rip)\n"
		"fldcw fcw_in(%%rip)\n"
#define L(n) "vmovdqu yin+" #n "*32(%%rip), %%ymm" #n "\n"
		L(0) L(1) L(2) L(3) L(4) L(5) L(6) L(7) L(8) L(9) L(10) L(11) L(12) L(13) L(14) L(15)
		"1: pause\n"
		"cmpl $0, zt_stop(%%rip)\n"
		"je 1b\n"
#define S(n) "vmovdqu %%ymm" #n ", yout+" #n "*32(%%rip)\n"
		S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
		"stmxcsr mxcsr_out(%%rip)\n"
		"fnstcw fcw_out(%%rip)\n"
		"ldmxcsr mxcsr_def(%%rip)\n"
		"fninit\n"
		:
		:
		: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
		  "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
	for (int i = 0; i < 16; i++)
		if (memcmp(yin[i], yout[i], 32))
			zt_fail("ymm%d differs", i);
	if (mxcsr_out != mxcsr_in)
		zt_fail("MXCSR is 0x%x, want 0x%x", mxcsr_out, mxcsr_in);
	if (fcw_out != fcw_in)
		zt_fail("x87 control word is 0x%x, want 0x%x", fcw_out, fcw_in);
	return zt_finish();
}
uint32_t mxcsr_def = 0x1f80;
