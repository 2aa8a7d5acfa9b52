// zdtm: desc: AVX-512 state: zmm0..zmm31 and opmask k1..k7 hold patterns in a busy asm loop; compared after SIGTERM (skipped only where the CPU lacks avx512f)
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: needs: cpu:avx512f
// zdtm: cflags: -mavx512f -mavx512bw
#define _GNU_SOURCE
#include "zdtmtst.h"
#include <inttypes.h>
#include <stdint.h>
#include <string.h>

uint8_t zin[32][64] __attribute__((aligned(64)));
uint8_t zout[32][64] __attribute__((aligned(64)));
uint64_t kin[8], kout[8];

int main(int argc, char **argv)
{
	zt_init(argc, argv);
	zt_pattern_fill(zin, sizeof(zin), 0x512);
	for (int i = 1; i < 8; i++)
		kin[i] = 0xfedcba9876543210ULL ^ ((uint64_t)i * 0x0101010101010101ULL);
	zt_ready();
	asm volatile(
#define L(n) "vmovdqu64 zin+" #n "*64(%%rip), %%zmm" #n "\n"
		L(0) L(1) L(2) L(3) L(4) L(5) L(6) L(7) L(8) L(9) L(10) L(11) L(12) L(13) L(14) L(15)
		L(16) L(17) L(18) L(19) L(20) L(21) L(22) L(23) L(24) L(25) L(26) L(27) L(28) L(29) L(30) L(31)
#define KL(n) "kmovq kin+" #n "*8(%%rip), %%k" #n "\n"
		KL(1) KL(2) KL(3) KL(4) KL(5) KL(6) KL(7)
		"1: pause\n"
		"cmpl $0, zt_stop(%%rip)\n"
		"je 1b\n"
#define S(n) "vmovdqu64 %%zmm" #n ", zout+" #n "*64(%%rip)\n"
		S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
		S(16) S(17) S(18) S(19) S(20) S(21) S(22) S(23) S(24) S(25) S(26) S(27) S(28) S(29) S(30) S(31)
#define KS(n) "kmovq %%k" #n ", kout+" #n "*8(%%rip)\n"
		KS(1) KS(2) KS(3) KS(4) KS(5) KS(6) KS(7)
		"vzeroupper\n"
		:
		:
		: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
		  "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22",
		  "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k1", "k2", "k3",
		  "k4", "k5", "k6", "k7", "memory", "cc");
	for (int i = 0; i < 32; i++)
		if (memcmp(zin[i], zout[i], 64))
			zt_fail("zmm%d differs", i);
	for (int i = 1; i < 8; i++)
		if (kin[i] != kout[i])
			zt_fail("k%d is 0x%016" PRIx64 ", want 0x%016" PRIx64, i, kout[i], kin[i]);
	return zt_finish();
}
