package parasite

import (
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// archGetCPUID is arch_prctl's ARCH_GET_CPUID (asm/prctl.h): 1 when the
// thread may run cpuid, 0 when cpuid faults (ARCH_SET_CPUID 0).
const archGetCPUID = 0x1011

// archThreadCalls are the x86 getters DumpThread adds to its list.
func archThreadCalls() []ptrace.Injection {
	return []ptrace.Injection{{Nr: unix.SYS_ARCH_PRCTL, Args: []uint64{archGetCPUID}}}
}

// archThreadResults takes the answers to archThreadCalls.
func archThreadResults(ti *ThreadInfo, r []uint64) {
	ti.CPUID = r[0]
}
