package pidctl

import (
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
	*ptrace.Tracee
	SyscallAddr uint64
	// PtraceOptions are the ptrace options the caller keeps on the task
	// (e.g. PTRACE_O_EXITKILL); Clone puts them back on the parent after
	// its temporary PTRACE_O_TRACE* and gives them to the child.
	// PTRACE_O_TRACESYSGOOD is always added: injections need it.
	PtraceOptions int
	// parentNsPID is what clone3 returned for a task Clone made: its PID
	// in its parent's namespace.
	parentNsPID int
}

// NewTask wraps a thread already attached to tracer and stopped. syscallAddr
// must hold a syscall instruction (0f 05) mapped executable in the task.
func NewTask(tracer *ptrace.Tracer, tid, tgid int, syscallAddr uint64) *Task {
	return FromTracee(tracer.AdoptIn(tid, tgid), syscallAddr)
}

// FromTracee wraps a thread seized by package ptrace; its injected
// syscalls run at syscallAddr from now on.
func FromTracee(te *ptrace.Tracee, syscallAddr uint64) *Task {
	te.UseSyscallAt(syscallAddr)
	return &Task{Tracee: te, SyscallAddr: syscallAddr}
}

// options are the ptrace options the task runs with between clones.
func (t *Task) options() int { return t.PtraceOptions | unix.PTRACE_O_TRACESYSGOOD }

// inject is Syscall with two hooks, both run on the tracer thread: prepare
// just before the task is resumed into the syscall, and onEvent at each
// fork/vfork/clone event stop, with the new task's id.
func (t *Task) inject(nr uint64, args []uint64, prepare func() error, onEvent func(child int) error) (uint64, error) {
	in := ptrace.Injection{Nr: nr, Args: args, Prepare: prepare}
	if onEvent != nil {
		in.OnEvent = func(_, child int) error { return onEvent(child) }
	}
	ret, err := t.Inject(in)
	if err != nil {
		return 0, fmt.Errorf("injected syscall %d at %#x: %w", nr, t.SyscallAddr, err)
	}
	return ret, nil
}

// do runs f on the tracer thread, naming the task and op in its error.
func (t *Task) do(op string, f func() error) error {
	if err := t.Tracer().Do(f); err != nil {
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
