package ptrace

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// RunCode runs code already mapped in the stopped thread until it executes
// int3, and returns the registers it stopped with. set gives the registers
// to start with (a copy of the thread's own: at least the instruction
// pointer). As with Syscall, every signal is blocked while the code runs and
// the thread's registers and signal mask are put back afterwards, unless the
// thread ended (ExitedError). The code must not fork or clone: a new task
// would start under our tracing with nobody waiting for it.
func (te *Tracee) RunCode(set func(r *Regs)) (Regs, error) {
	var out Regs
	err := te.do("run injected code", func() error {
		return te.preserving(func(orig Regs) error {
			r := orig
			ClearSyscall(&r) // no syscall restart on the way in
			set(&r)
			return te.runToTrap(&r, &out)
		})
	})
	return out, err
}

// runToTrap sets r, continues the thread and waits for its int3. Runs on
// the tracer thread.
func (te *Tracee) runToTrap(r, out *Regs) error {
	if err := unix.PtraceSetRegs(te.Tid, r); err != nil {
		return err
	}
	for {
		if err := unix.PtraceCont(te.Tid, 0); err != nil {
			return err
		}
		ws, err := wait(te.Tid)
		if err != nil {
			return err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return &ExitedError{ws}
		case !ws.Stopped():
			continue
		case Event(ws) == unix.PTRACE_EVENT_STOP:
			// Group-stop or an interrupt: go on.
			continue
		case ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() == 0:
			return unix.PtraceGetRegs(te.Tid, out)
		default:
			var at Regs
			unix.PtraceGetRegs(te.Tid, &at)
			return fmt.Errorf("injected code stopped by signal %d at %#x, not at its int3", ws.StopSignal(), at.Rip)
		}
	}
}
