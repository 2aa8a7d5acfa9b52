package dump

import (
	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/support"
)

// archSettingRefusal refuses the x86 per-thread settings CRIU's images have
// no field for: CPUID faulting (arch_prctl ARCH_GET_CPUID answered 0),
// which a restored thread would lose.
func archSettingRefusal(c *files.Checker, pid int, where string, cpuid uint64) error {
	if ptrace.Errno(cpuid) == 0 && cpuid == 0 {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: where, Object: "CPUID faulting (arch_prctl ARCH_SET_CPUID 0)", Kind: support.CPUIDFaulting}
	}
	return nil
}
