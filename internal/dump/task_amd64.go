package dump

import (
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// Kernel-internal syscall restart codes (include/linux/errno.h).
const (
	errRestartSys          = 512
	errRestartNoIntr       = 513
	errRestartNoHand       = 514
	errRestartRestartBlock = 516
)

// restartSyscall does to saved registers what the kernel would have done to
// a thread stopped inside an interrupted syscall when it returns to user
// space without a signal handler: re-execute the syscall. The restored task
// resumes without that kernel state, so it must be in the registers.
// restart_syscall(2) needs a restart block the kernel kept for the old task,
// which the restored one does not have: that syscall reports EINTR instead,
// which callers of such syscalls (nanosleep, poll, ...) must handle anyway.
func restartSyscall(r *ptrace.Regs) {
	if int64(r.Orig_rax) < 0 {
		return
	}
	switch -int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand:
		r.Rax = r.Orig_rax
		r.Rip -= 2
	case errRestartRestartBlock:
		eintr := -int64(unix.EINTR)
		r.Rax = uint64(eintr)
	}
}
