package restore

import (
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// runSyscallToExit points a stopped thread at the syscall instruction at
// addr with syscall nr (exit_group, kill of itself) and lets it run until
// it is gone; its tracer is its parent, so this reaps it.
func runSyscallToExit(te *ptrace.Tracee, addr, nr uint64, args ...uint64) (unix.WaitStatus, error) {
	regs, err := te.GetRegs()
	if err != nil {
		return 0, err
	}
	regs.Rip = addr
	regs.Rax = nr
	regs.Orig_rax = ^uint64(0)
	var a [6]uint64
	copy(a[:], args)
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8, regs.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
	if err := te.SetRegs(&regs); err != nil {
		return 0, err
	}
	if err := te.SetSigmask(0); err != nil {
		return 0, err
	}
	return te.RunToExit()
}
