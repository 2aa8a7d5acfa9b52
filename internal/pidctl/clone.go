package pidctl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// Method says how Clone makes the kernel pick the PID.
type Method int

const (
	// Auto uses set_tid when the kernel has it, ns_last_pid otherwise.
	Auto Method = iota
	// SetTID passes the PID in clone3's set_tid (Linux 5.5+).
	SetTID
	// NsLastPid writes PID-1 to /proc/sys/kernel/ns_last_pid under a lock,
	// clones, and checks the child got PID (retrying if another process
	// took it first).
	NsLastPid
)

func (m Method) String() string {
	switch m {
	case Auto:
		return "auto"
	case SetTID:
		return "set_tid"
	case NsLastPid:
		return "ns_last_pid"
	}
	return fmt.Sprintf("Method(%d)", int(m))
}

// Clone flags for the two kinds of task.
const (
	// ThreadFlags make a thread in the parent's thread group.
	ThreadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM
)

// unsupportedFlags need pointers Clone does not provide, or would stop the
// child from being attached (CLONE_UNTRACED) or block the parent until the
// child execs (CLONE_VFORK). The restorer sets what they would (TLS,
// clear_child_tid, ...) with injected syscalls instead.
const unsupportedFlags = unix.CLONE_VFORK | unix.CLONE_UNTRACED | unix.CLONE_PTRACE | unix.CLONE_PIDFD |
	unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | unix.CLONE_SETTLS |
	unix.CLONE_INTO_CGROUP

// Request describes the task Clone creates.
type Request struct {
	// PID is the PID (TID for a thread) the new task must have in its own
	// PID namespace.
	PID int
	// Flags are clone3 flags: 0 or unix.CLONE_PARENT for a process,
	// ThreadFlags for a thread, plus namespace flags if wanted.
	Flags uint64
	// ExitSignal is the signal the parent gets when the child exits:
	// SIGCHLD for processes, 0 for threads. Ignored with CLONE_PARENT: the
	// child gets the parent's own exit signal (clone3 wants 0 there).
	ExitSignal uint64
	// Scratch is the address of ScratchSize writable bytes in the parent,
	// which Clone overwrites with clone3's arguments.
	Scratch uint64
	Method  Method
	// LockFile serialises ns_last_pid writers among gockpt processes;
	// DefaultLockFile if empty.
	LockFile string
}

// ScratchSize is how much of Request.Scratch Clone uses.
const ScratchSize = 96

// DefaultLockFile is the ns_last_pid lock shared by all gockpt processes.
const DefaultLockFile = "/run/gockpt/ns_last_pid.lock"

// struct clone_args (linux/sched.h): u64 fields in this order.
const (
	argFlags = iota
	argPidfd
	argChildTID
	argParentTID
	argExitSignal
	argStack
	argStackSize
	argTLS
	argSetTID
	argSetTIDSize
	argCgroup
)

const (
	cloneArgsSizeVer0 = 64 // up to tls (Linux 5.3)
	cloneArgsSizeVer1 = 80 // + set_tid, set_tid_size (Linux 5.5)
)

// ErrSetTIDUnsupported is returned by SetTIDSupported (wrapped) when clone3
// has no set_tid.
var ErrSetTIDUnsupported = errors.New("clone3 set_tid is not supported (needs Linux 5.5)")

var setTIDProbe = sync.OnceValue(func() error {
	switch e := probeClone3SetTID(); e {
	case unix.EINVAL:
		return nil
	case unix.E2BIG:
		return fmt.Errorf("%w: clone3 rejects its set_tid fields (E2BIG, Linux 5.3 or 5.4)", ErrSetTIDUnsupported)
	case unix.ENOSYS:
		return fmt.Errorf("%w: no clone3 (ENOSYS: before Linux 5.3, or blocked by seccomp)", ErrSetTIDUnsupported)
	default:
		return fmt.Errorf("%w: clone3 probe: unexpected %v", ErrSetTIDUnsupported, e)
	}
})

// SetTIDSupported probes (once) whether clone3 takes set_tid; the error
// wraps ErrSetTIDUnsupported and says why not.
func SetTIDSupported() error { return setTIDProbe() }

// Clone creates a new task by injecting clone3 into the stopped parent and
// returns it attached to the parent's tracer, stopped before its first
// instruction, with PID req.PID. The child's registers are the parent's at the
// exit of the injected syscall (rax 0, rip = parent.SyscallAddr+2): the caller
// must set them before letting it run. Its signal mask is the parent's own (not
// the all-blocked mask used while injecting). The parent is left as it was.
//
// A PID already in use gives a *TakenError. The child inherits SyscallAddr.
func Clone(parent *Task, req Request) (*Task, error) {
	if err := req.check(); err != nil {
		return nil, fmt.Errorf("task %d: clone PID %d: %w", parent.Tid, req.PID, err)
	}
	m := req.Method
	if m == Auto {
		m = SetTID
		if SetTIDSupported() != nil {
			m = NsLastPid
		}
	}
	switch m {
	case SetTID:
		if err := SetTIDSupported(); err != nil {
			return nil, fmt.Errorf("task %d: clone PID %d: %w", parent.Tid, req.PID, err)
		}
		child, err := cloneOnce(parent, req, true, nil)
		if err != nil {
			return nil, err
		}
		// clone3 answered with the child's PID in the parent's namespace:
		// when it is the one asked, the namespaces are the same and
		// set_tid did its job; else /proc says (a nested namespace).
		if child.parentNsPID == req.PID {
			return child, nil
		}
		if err := child.checkPID(req.PID); err != nil {
			discard(parent, child, req.Flags)
			return nil, err
		}
		return child, nil
	case NsLastPid:
		return cloneNsLastPid(parent, req)
	}
	return nil, fmt.Errorf("task %d: clone PID %d: unknown method %v", parent.Tid, req.PID, m)
}

func (req *Request) check() error {
	if req.PID < 1 {
		return fmt.Errorf("invalid PID %d", req.PID)
	}
	if req.Flags&unsupportedFlags != 0 {
		return fmt.Errorf("clone flags %#x include unsupported %#x", req.Flags, req.Flags&unsupportedFlags)
	}
	if req.Flags&unix.CLONE_THREAD != 0 && req.ExitSignal != 0 {
		return fmt.Errorf("a thread has no exit signal (got %d)", req.ExitSignal)
	}
	if req.Scratch == 0 {
		return errors.New("no scratch address for clone3's arguments")
	}
	return nil
}

// checkPID verifies the child's PID in its own namespace.
func (c *Task) checkPID(want int) error {
	got, err := innermostPID(c.Tid)
	if err != nil {
		return fmt.Errorf("task %d: read its PID: %w", c.Tid, err)
	}
	if got != want {
		return fmt.Errorf("task %d: new task got PID %d, not %d", c.Tid, got, want)
	}
	return nil
}

// cloneArgs encodes struct clone_args, followed by the one-entry set_tid
// array when setTID; it returns the bytes and the size to pass to clone3.
func cloneArgs(req Request, setTID bool) ([]byte, uint64) {
	var a [cloneArgsSizeVer1 / 8]uint64
	a[argFlags] = req.Flags
	if req.Flags&unix.CLONE_PARENT == 0 {
		a[argExitSignal] = req.ExitSignal
	}
	size := uint64(cloneArgsSizeVer0)
	b := make([]byte, cloneArgsSizeVer1, ScratchSize)
	if setTID {
		a[argSetTID] = req.Scratch + cloneArgsSizeVer1
		a[argSetTIDSize] = 1
		size = cloneArgsSizeVer1
		b = binary.LittleEndian.AppendUint32(b, uint32(req.PID)) // pid_t set_tid[1]
	}
	for i, v := range a {
		binary.LittleEndian.PutUint64(b[i*8:], v)
	}
	return b, size
}

// cloneOnce injects one clone3 (with or without set_tid) and returns the
// child, stopped, whatever PID it got. prepare, if set, runs on the tracer
// thread just before the parent enters clone3. Errors name the parent;
// EEXIST becomes a *TakenError.
func cloneOnce(parent *Task, req Request, setTID bool, prepare func() error) (*Task, error) {
	args, size := cloneArgs(req, setTID)
	if err := ptrace.WriteMem(parent.Tgid, req.Scratch, args); err != nil {
		return nil, fmt.Errorf("task %d: clone PID %d: write clone3 arguments: %w", parent.Tid, req.PID, err)
	}
	mask, err := parent.GetSigmask()
	if err != nil {
		return nil, err
	}
	opts := parent.options() | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK | unix.PTRACE_O_TRACECLONE
	if err := parent.do("set ptrace options", func() error { return unix.PtraceSetOptions(parent.Tid, opts) }); err != nil {
		return nil, err
	}
	childTid := 0
	var childErr error
	ret, err := parent.inject(unix.SYS_CLONE3, []uint64{req.Scratch, size}, prepare, func(tid int) error {
		childTid = tid
		// Errors about the child do not abort the parent's syscall: it
		// must still be run to its exit stop and restored.
		childErr = adoptChild(childTid, parent.options(), mask)
		return nil
	})
	if e := parent.do("reset ptrace options", func() error { return unix.PtraceSetOptions(parent.Tid, parent.options()) }); e != nil && err == nil {
		err = e
	}
	var child *Task
	if childTid != 0 {
		tgid := childTid
		if req.Flags&unix.CLONE_THREAD != 0 {
			tgid = parent.Tgid
		}
		child = NewTask(parent.Tracer(), childTid, tgid, parent.SyscallAddr)
		child.PtraceOptions = parent.PtraceOptions
	}
	fail := func(err error) (*Task, error) {
		if child != nil {
			discard(parent, child, req.Flags)
		}
		return nil, err
	}
	if err != nil {
		return fail(fmt.Errorf("task %d: clone PID %d: %w", parent.Tid, req.PID, err))
	}
	if childErr != nil {
		return fail(fmt.Errorf("task %d: clone PID %d: new task %d: %w", parent.Tid, req.PID, childTid, childErr))
	}
	if e := ptrace.Errno(ret); e != 0 {
		if e == unix.EEXIST {
			return fail(takenError(req.PID))
		}
		hint := ""
		if e == unix.EPERM && setTID {
			hint = " (set_tid needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over the PID namespace)"
		}
		return fail(fmt.Errorf("task %d: clone PID %d: injected clone3: %w%s", parent.Tid, req.PID, e, hint))
	}
	if child == nil {
		return nil, fmt.Errorf("task %d: clone PID %d: clone3 returned %d but no fork event came: is the parent traced with TRACECLONE?", parent.Tid, req.PID, int64(ret))
	}
	child.parentNsPID = int(ret)
	return child, nil
}

// adoptChild waits for the auto-attached child's first stop and undoes what
// it inherited from the injection: the temporary ptrace options (opts are the
// parent's lasting ones) and the all-blocked signal mask. Runs on the tracer
// thread.
func adoptChild(tid int, opts int, mask uint64) error {
	ws, err := waitTid(tid)
	if err != nil {
		return fmt.Errorf("wait for its first stop: %w", err)
	}
	if ws.Exited() || ws.Signaled() {
		return fmt.Errorf("wait for its first stop: %w", &ptrace.ExitedError{Status: ws})
	}
	if !ws.Stopped() || ws.TrapCause() != unix.PTRACE_EVENT_STOP {
		return fmt.Errorf("first stop is %#x (signal %d), not PTRACE_EVENT_STOP", uint32(ws), ws.StopSignal())
	}
	if err := unix.PtraceSetOptions(tid, opts); err != nil {
		return fmt.Errorf("set ptrace options: %w", err)
	}
	if err := setSigmask(tid, mask); err != nil {
		return fmt.Errorf("set sigmask: %w", err)
	}
	return nil
}

// discard gets rid of a child Clone will not return: a thread exits through
// an injected exit; a process is killed and reaped, by gockpt if it is its
// real parent, else by the parent through an injected wait4.
func discard(parent, child *Task, flags uint64) error {
	if flags&unix.CLONE_THREAD != 0 {
		_, err := child.Syscall(unix.SYS_EXIT, 0)
		var ex *ptrace.ExitedError
		if errors.As(err, &ex) {
			return nil
		}
		if err == nil {
			err = errors.New("exit returned")
		}
		return fmt.Errorf("task %d: end unwanted thread %d: %w", parent.Tid, child.Tid, err)
	}
	ppid := 0
	if st, err := readStatus(child.Tid); err == nil {
		fmt.Sscan(st["PPid"], &ppid)
	}
	if err := child.Kill(); err != nil {
		return err
	}
	if ppid == parent.Tgid {
		return parent.ReapChild(child.Tid)
	}
	if ppid == os.Getpid() {
		// Our own child (CLONE_PARENT): reap what the tracer wait left.
		var ws unix.WaitStatus
		unix.Wait4(child.Tid, &ws, unix.WALL|unix.WNOHANG, nil)
	}
	if ppid != 0 && ppid != os.Getpid() {
		return fmt.Errorf("task %d: killed unwanted child %d, but its parent %d must reap it", parent.Tid, child.Tid, ppid)
	}
	return nil
}
