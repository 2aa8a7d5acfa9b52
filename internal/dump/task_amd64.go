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
// which the restored one does not have: poll, nanosleep, clock_nanosleep
// and futex run again from their start (ptrace.RerunsAfterRestartBlock),
// others report EINTR.
func restartSyscall(r *ptrace.Regs, pid, tid int) {
	if int64(r.Orig_rax) < 0 {
		return
	}
	switch -int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand:
		r.Rax = r.Orig_rax
		r.Rip -= 2
	case errRestartRestartBlock:
		nr := r.Orig_rax
		if nr == unix.SYS_RESTART_SYSCALL {
			// Already continued once through its restart block
			// (after a pre-dump let it run): which syscall it was,
			// the kernel function it sleeps in tells.
			nr = ptrace.SleepingSyscall(pid, tid, r)
		}
		if ptrace.RerunsAfterRestartBlock(nr) {
			r.Rax = nr
			r.Rip -= 2
			return
		}
		eintr := -int64(unix.EINTR)
		r.Rax = uint64(eintr)
	}
}
