package ptrace

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gockpt/gockpt/internal/kcmp"
)

// DefaultStopTimeout bounds how long Seize waits for a thread to stop
// when the tracer was given no limit of its own.
const DefaultStopTimeout = 10 * time.Second

// SetStopTimeout bounds how long Seize waits for a seized thread to stop;
// d <= 0 means DefaultStopTimeout.
func (t *Tracer) SetStopTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultStopTimeout
	}
	t.stopTimeout = d
}

// NotStoppedError is a thread that was seized but did not stop in time:
// it sleeps where no signal reaches it (state D), most often a parent in
// vfork waiting for its child to exec or exit. Such a thread stays
// attached until the Tracer is closed (PTRACE_DETACH needs a stopped
// tracee; the kernel lets it go, its interrupt undone, when the tracer
// thread ends), so the caller must Close the Tracer.
type NotStoppedError struct {
	Pid, Tid int
	Comm     string
	// State is the state letter and name from /proc, e.g. "D (disk sleep)".
	State string
	// Wchan is where in the kernel it sleeps, "" if unknown.
	Wchan string
	// VforkChild is the child sharing its memory (vfork), 0 if none.
	VforkChild     int
	VforkChildComm string
	Waited         time.Duration
}

func (e *NotStoppedError) Error() string {
	who := fmt.Sprintf("task %d (%s)", e.Pid, e.Comm)
	if e.Tid != e.Pid {
		who = fmt.Sprintf("task %d (%s) thread %d", e.Pid, e.Comm, e.Tid)
	}
	if e.VforkChild != 0 {
		return fmt.Sprintf("%s is in vfork: waiting for child %d (%s) to exec or exit, and cannot be stopped until then (waited %v, state %s): dump again once child %d has exec'd or exited", who, e.VforkChild, e.VforkChildComm, e.Waited, e.State, e.VforkChild)
	}
	where := ""
	if e.Wchan != "" {
		where = " in " + e.Wchan
	}
	if strings.HasPrefix(e.State, "D") {
		return fmt.Sprintf("%s did not stop within %v: it is in uninterruptible sleep (state %s%s), where no signal reaches it; see what it waits for (cat /proc/%d/task/%d/stack), then dump again once it has woken, or give it longer with --timeout", who, e.Waited, e.State, where, e.Pid, e.Tid)
	}
	return fmt.Sprintf("%s did not stop within %v (state %s%s): dump again, or give it longer with --timeout", who, e.Waited, e.State, where)
}

// notStopped describes thread tid of pid that did not stop after waited.
func notStopped(pid, tid int, waited time.Duration) *NotStoppedError {
	e := &NotStoppedError{Pid: pid, Tid: tid, Comm: commOf(pid), State: "?", Waited: waited}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "State:"); ok {
				e.State = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/wchan", pid, tid)); err == nil && string(b) != "0" {
		e.Wchan = strings.TrimSpace(string(b))
	}
	if strings.HasPrefix(e.State, "D") {
		e.VforkChild = vforkChild(pid, tid)
		if e.VforkChild != 0 {
			e.VforkChildComm = commOf(e.VforkChild)
		}
	}
	return e
}

// vforkChild finds the child of thread tid that shares its memory: the
// vfork child it waits for. 0 if none.
func vforkChild(pid, tid int) int {
	kids, err := listChildren(pid, tid)
	if err != nil {
		return 0
	}
	for _, c := range kids {
		if kcmp.Compare(kcmp.VM, pid, c, 0, 0) == 0 {
			return c
		}
	}
	return 0
}

func commOf(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
