package pidctl

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// Task is one stopped, traced thread driven through a known syscall
// instruction at SyscallAddr (the stub's own, inherited by every task cloned
// from it), so it works even after the task's vDSO and stack are gone.
type Task struct {
	Tid         int
	Tgid        int
	SyscallAddr uint64
	// PtraceOptions are the ptrace options the caller keeps on the task
	// (e.g. PTRACE_O_EXITKILL); Clone puts them back on the parent after
	// its temporary PTRACE_O_TRACE* and gives them to the child.
	// PTRACE_O_TRACESYSGOOD is always added: injections need it.
	PtraceOptions int
	tracer        *ptrace.Tracer
}

// NewTask wraps a thread already attached to tracer and stopped. syscallAddr
// must hold a syscall instruction (0f 05) mapped executable in the task.
func NewTask(tracer *ptrace.Tracer, tid, tgid int, syscallAddr uint64) *Task {
	return &Task{Tid: tid, Tgid: tgid, SyscallAddr: syscallAddr, tracer: tracer}
}

// FromTracee wraps a thread seized by package ptrace.
func FromTracee(te *ptrace.Tracee, syscallAddr uint64) *Task {
	return NewTask(te.Tracer(), te.Tid, te.Tgid, syscallAddr)
}

// Tracer is the tracer the task is attached to.
func (t *Task) Tracer() *ptrace.Tracer { return t.tracer }

// allSignals blocks everything blockable while an injected syscall runs, so
// that no handler runs on registers that are not the task's own.
const allSignals = ^uint64(0)

// options are the ptrace options the task runs with between clones.
func (t *Task) options() int { return t.PtraceOptions | unix.PTRACE_O_TRACESYSGOOD }

// exitedError reports that the task ended while an injected syscall ran.
type exitedError struct{ ws unix.WaitStatus }

func (e *exitedError) Error() string {
	if e.ws.Signaled() {
		return fmt.Sprintf("task was killed by signal %d", e.ws.Signal())
	}
	return fmt.Sprintf("task exited with status %d", e.ws.ExitStatus())
}

// Syscall runs syscall nr with args in the stopped task through SyscallAddr
// and returns the raw result (-errno on failure, see ptrace.Errno). The
// task's registers and signal mask are restored afterwards, whatever the
// outcome.
func (t *Task) Syscall(nr uint64, args ...uint64) (uint64, error) {
	return t.inject(nr, args, nil, nil)
}

// inject is Syscall with two hooks, both run on the tracer thread: prepare
// just before the task is resumed into the syscall, and onEvent at each
// fork/vfork/clone event stop, with the event number.
func (t *Task) inject(nr uint64, args []uint64, prepare func() error, onEvent func(event int) error) (uint64, error) {
	if len(args) > 6 {
		return 0, fmt.Errorf("task %d: syscall %d: %d arguments, at most 6", t.Tid, nr, len(args))
	}
	var ret uint64
	err := t.tracer.Do(func() error {
		var orig ptrace.Regs
		if err := unix.PtraceGetRegs(t.Tid, &orig); err != nil {
			return err
		}
		mask, err := getSigmask(t.Tid)
		if err != nil {
			return err
		}
		if err := setSigmask(t.Tid, allSignals); err != nil {
			return err
		}
		r := orig
		r.Rax = nr
		// -1: no syscall-restart logic applies to ours; the saved orig_rax
		// brings the task's own restart back when it resumes.
		r.Orig_rax = ^uint64(0)
		r.Rip = t.SyscallAddr
		var a [6]uint64
		copy(a[:], args)
		r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
		if prepare != nil {
			err = prepare()
		}
		if err == nil {
			ret, err = t.run(&r, nr, onEvent)
		}
		var ex *exitedError
		if errors.As(err, &ex) {
			return err // nothing left to restore
		}
		if e := unix.PtraceSetRegs(t.Tid, &orig); e != nil && err == nil {
			err = fmt.Errorf("restore registers: %w", e)
		}
		if e := setSigmask(t.Tid, mask); e != nil && err == nil {
			err = fmt.Errorf("restore sigmask: %w", e)
		}
		return err
	})
	if err != nil {
		return 0, &ptrace.Error{Op: fmt.Sprintf("injected syscall %d at %#x", nr, t.SyscallAddr), Tid: t.Tid, Err: err}
	}
	return ret, nil
}

// run sets r and resumes the task to the syscall's entry and exit stops.
// Runs on the tracer thread.
func (t *Task) run(r *ptrace.Regs, nr uint64, onEvent func(event int) error) (uint64, error) {
	if err := unix.PtraceSetRegs(t.Tid, r); err != nil {
		return 0, err
	}
	for stage := 0; stage < 2; {
		if err := unix.PtraceSyscall(t.Tid, 0); err != nil {
			return 0, err
		}
		ws, err := waitTid(t.Tid)
		if err != nil {
			return 0, err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return 0, &exitedError{ws}
		case !ws.Stopped():
			continue
		case ws.StopSignal() == unix.SIGTRAP|0x80:
			stage++
			if stage == 1 {
				var entry ptrace.Regs
				if err := unix.PtraceGetRegs(t.Tid, &entry); err != nil {
					return 0, err
				}
				if entry.Orig_rax != nr {
					return 0, fmt.Errorf("entered syscall %d, not %d: no syscall instruction at %#x?", int64(entry.Orig_rax), nr, t.SyscallAddr)
				}
			}
		case ws.TrapCause() == unix.PTRACE_EVENT_FORK || ws.TrapCause() == unix.PTRACE_EVENT_VFORK || ws.TrapCause() == unix.PTRACE_EVENT_CLONE:
			if onEvent == nil {
				return 0, fmt.Errorf("unexpected fork event %d while running injected syscall %d", ws.TrapCause(), nr)
			}
			if err := onEvent(ws.TrapCause()); err != nil {
				return 0, err
			}
		case ws.TrapCause() == unix.PTRACE_EVENT_STOP:
			// Group-stop or interrupt: resume into the syscall again.
		default:
			return 0, fmt.Errorf("unexpected stop %#x (signal %d) while running injected syscall %d", uint32(ws), ws.StopSignal(), nr)
		}
	}
	var out ptrace.Regs
	if err := unix.PtraceGetRegs(t.Tid, &out); err != nil {
		return 0, err
	}
	return out.Rax, nil
}

// GetRegs reads the task's general registers.
func (t *Task) GetRegs() (ptrace.Regs, error) {
	var r ptrace.Regs
	err := t.do("get registers", func() error { return unix.PtraceGetRegs(t.Tid, &r) })
	return r, err
}

// SetRegs writes the task's general registers.
func (t *Task) SetRegs(r *ptrace.Regs) error {
	return t.do("set registers", func() error { return unix.PtraceSetRegs(t.Tid, r) })
}

// GetSigmask reads the task's blocked-signal mask.
func (t *Task) GetSigmask() (uint64, error) {
	var m uint64
	err := t.do("get sigmask", func() error {
		var err error
		m, err = getSigmask(t.Tid)
		return err
	})
	return m, err
}

func (t *Task) do(op string, f func() error) error {
	if err := t.tracer.Do(f); err != nil {
		return &ptrace.Error{Op: op, Tid: t.Tid, Err: err}
	}
	return nil
}

// Kill sends SIGKILL to the task's thread group and waits on the tracer
// thread until each of its threads we trace is gone. When gockpt is the
// group's real parent this also reaps it; otherwise the zombie is left for
// its parent (see ReapChild). Killing a task that is already gone is not an
// error.
func (t *Task) Kill() error {
	tids := threadsOf(t.Tgid)
	if err := unix.Kill(t.Tgid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return fmt.Errorf("task %d: kill: %w", t.Tgid, err)
	}
	return t.do("wait for exit after SIGKILL", func() error {
		// Other threads first: the leader reports its exit only after them.
		for _, tid := range tids {
			if tid != t.Tgid {
				if err := waitGone(tid); err != nil {
					return err
				}
			}
		}
		return waitGone(t.Tgid)
	})
}

// ReapChild reaps the zombie child pid of the task with an injected wait4
// (WNOHANG: the child must already be dead, as after its Kill).
func (t *Task) ReapChild(pid int) error {
	// A killed traced child becomes waitable for its parent only once its
	// tracer has seen it die: poll briefly rather than block the parent.
	deadline := time.Now().Add(2 * time.Second)
	for {
		ret, err := t.Syscall(unix.SYS_WAIT4, uint64(pid), 0, unix.WNOHANG|unix.WALL, 0)
		if err != nil {
			return err
		}
		if e := ptrace.Errno(ret); e != 0 {
			return fmt.Errorf("task %d: reap child %d: wait4: %w", t.Tid, pid, e)
		}
		if int(ret) == pid {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task %d: reap child %d: wait4 returned %d: child still running?", t.Tid, pid, int64(ret))
		}
		time.Sleep(time.Millisecond)
	}
}

// waitGone waits for tid to exit; ECHILD means it is not (or no longer) ours
// to wait for. Runs on the tracer thread.
func waitGone(tid int) error {
	for {
		ws, err := waitTid(tid)
		if err == unix.ECHILD {
			return nil
		}
		if err != nil {
			return fmt.Errorf("wait for %d: %w", tid, err)
		}
		if ws.Exited() || ws.Signaled() {
			return nil
		}
		// A stop reported before the kill took effect: SIGKILL ends it.
	}
}

func waitTid(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err
	}
}

func threadsOf(tgid int) []int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", tgid))
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out
}
