package dump

import (
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/support"
)

// archGetCPUID is arch_prctl's ARCH_GET_CPUID (asm/prctl.h): 1 when the
// thread may run cpuid, 0 when cpuid faults (ARCH_SET_CPUID 0).
const archGetCPUID = 0x1011

// archSettingRefusal refuses the x86 per-thread settings CRIU's images have
// no field for: CPUID faulting, which a restored thread would lose.
func archSettingRefusal(c *files.Checker, pid int, where string, te *ptrace.Tracee) error {
	v, err := te.Syscall(unix.SYS_ARCH_PRCTL, archGetCPUID, 0, 0, 0, 0)
	if err != nil {
		return err
	}
	if ptrace.Errno(v) == 0 && v == 0 {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: where, Object: "CPUID faulting (arch_prctl ARCH_SET_CPUID 0)", Kind: support.CPUIDFaulting}
	}
	return nil
}
