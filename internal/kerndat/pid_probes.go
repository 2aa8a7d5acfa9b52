package kerndat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// struct clone_args offsets (all __u64).
const (
	cloneArgsExitSignal = 32
	cloneArgsSetTid     = 64
	cloneArgsSetTidSize = 72
	setTidOffset        = 256 // where the set_tid array goes in the scratch page
)

// injectClone makes the helper create a process with clone3, placed at
// setTid when non-zero, and returns the new PID. CLONE_PTRACE makes the new
// process a tracee of ours that traps before running a single instruction
// (the helper's registers point into its vDSO, not at code meant for a
// child). The new process is killed and reaped before injectClone returns.
func (h *helper) injectClone(scratch uint64, setTid int) (int, error) {
	args := make([]byte, unix.CLONE_ARGS_SIZE_VER1)
	ne := binary.NativeEndian
	ne.PutUint64(args[0:], unix.CLONE_PTRACE)
	ne.PutUint64(args[cloneArgsExitSignal:], uint64(unix.SIGCHLD))
	size := uint64(unix.CLONE_ARGS_SIZE_VER0)
	if setTid > 0 {
		ne.PutUint64(args[cloneArgsSetTid:], scratch+setTidOffset)
		ne.PutUint64(args[cloneArgsSetTidSize:], 1)
		size = unix.CLONE_ARGS_SIZE_VER1
		tid := make([]byte, 4)
		ne.PutUint32(tid, uint32(setTid))
		if err := ptrace.WriteMem(h.Pid, scratch+setTidOffset, tid); err != nil {
			return 0, err
		}
	}
	if err := ptrace.WriteMem(h.Pid, scratch, args[:size]); err != nil {
		return 0, err
	}
	ret, err := h.te.Syscall(unix.SYS_CLONE3, scratch, size)
	if err != nil {
		return 0, fmt.Errorf("inject clone3: %w", err)
	}
	if e := ptrace.Errno(ret); e != 0 {
		return 0, fmt.Errorf("injected clone3 in task %d: %w", h.Pid, e)
	}
	pid := int(ret)
	// Check from outside that the process exists where clone3 says, as the
	// helper's child, before it goes.
	st, statErr := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err := h.reapGrandchild(pid); err != nil {
		return pid, err
	}
	if statErr != nil {
		return pid, fmt.Errorf("clone3 in task %d returned %d, but: %w", h.Pid, pid, statErr)
	}
	if ppid := statusField(string(st), "PPid:"); ppid != strconv.Itoa(h.Pid) {
		return pid, fmt.Errorf("clone3 in task %d returned %d, whose parent is %s", h.Pid, pid, ppid)
	}
	return pid, nil
}

// reapGrandchild kills a process the helper created under CLONE_PTRACE and
// reaps it twice over: as its tracer (which detaches the zombie) and, by an
// injected wait4, as the helper, its real parent.
func (h *helper) reapGrandchild(pid int) error {
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		return fmt.Errorf("kill process %d created by task %d: %w", pid, h.Pid, err)
	}
	err := h.tr.Do(func() error {
		for {
			var ws unix.WaitStatus
			_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return fmt.Errorf("wait for process %d: %w", pid, err)
			}
			if ws.Exited() || ws.Signaled() {
				return nil
			}
		}
	})
	if err != nil {
		return err
	}
	ret, err := h.te.Syscall(unix.SYS_WAIT4, uint64(pid), 0, unix.WALL, 0)
	if err != nil {
		return fmt.Errorf("inject wait4(%d): %w", pid, err)
	}
	if e := ptrace.Errno(ret); e != 0 && e != unix.ECHILD {
		return fmt.Errorf("injected wait4(%d) in task %d: %w", pid, h.Pid, e)
	}
	return nil
}

// freePID returns a PID above the namespace's last one that no task uses,
// skipping the first skip candidates.
func freePID(skip int) (int, error) {
	pidMax := 32768
	if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pidMax = n
		}
	}
	last := lastPID()
	// A gap ahead of the allocator, so forks elsewhere rarely get there first.
	for i := 0; i < 1000; i++ {
		c := last + 200 + skip*997 + i*53
		c = 300 + (c-300)%(pidMax-300)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", c)); errors.Is(err, os.ErrNotExist) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("no free PID found near %d", last)
}

// lastPID is the PID most recently allocated in our namespace.
func lastPID() int {
	for _, path := range []string{"/proc/sys/kernel/ns_last_pid"} {
		if b, err := os.ReadFile(path); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return n
			}
		}
	}
	// /proc/loadavg ends with the last PID.
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 5 {
			if n, err := strconv.Atoi(f[4]); err == nil {
				return n
			}
		}
	}
	return os.Getpid()
}

func probeClone3SetTid() Result {
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	mem, err := h.scratch()
	if err != nil {
		return fail(err)
	}
	const tries = 5
	for try := 0; try < tries; try++ {
		want, err := freePID(try)
		if err != nil {
			return fail(err)
		}
		got, err := h.injectClone(mem, want)
		if errnoOf(err) == unix.EEXIST {
			continue // taken between our look and the clone
		}
		if err != nil {
			return clone3Failure(err)
		}
		if got != want {
			return failf("clone3 with set_tid %d created process %d", want, got)
		}
		return ok("task %d created process %d with set_tid %d; killed and reaped", h.Pid, got, want)
	}
	return failf("clone3 set_tid: every PID tried was taken (EEXIST) %d times", tries)
}

func clone3Failure(err error) Result {
	r := fail(err)
	switch errnoOf(err) {
	case unix.ENOSYS:
		r.Detail += " (clone3 needs Linux 5.3+)"
	case unix.E2BIG, unix.EINVAL:
		r.Detail += " (set_tid needs Linux 5.5+)"
	case unix.EPERM:
		r.Detail += " (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE needed over the PID namespace)"
	}
	return r
}

func probeNsLastPid() Result {
	const path = "/proc/sys/kernel/ns_last_pid"
	if _, err := os.Stat(path); err != nil {
		r := fail(err)
		r.Detail += " (CONFIG_CHECKPOINT_RESTORE is not set)"
		return r
	}
	h, err := startSeized()
	if err != nil {
		return seizeFailure(err)
	}
	defer h.stop()
	mem, err := h.scratch()
	if err != nil {
		return fail(err)
	}
	const tries = 5
	var raced []string
	for try := 0; try < tries; try++ {
		want, err := freePID(try)
		if err != nil {
			return fail(err)
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(want-1)), 0); err != nil {
			r := fail(err)
			if errnoOf(err) == unix.EPERM {
				r.Detail += " (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE needed over the PID namespace)"
			}
			return r
		}
		got, err := h.injectClone(mem, 0)
		if err != nil {
			return clone3Failure(err)
		}
		if got == want {
			return ok("wrote %d to ns_last_pid; task %d's next child got PID %d; killed and reaped", want-1, h.Pid, got)
		}
		raced = append(raced, fmt.Sprintf("wanted %d, got %d", want, got))
	}
	// Other processes forked between our write and our fork every time: the
	// mechanism works, the namespace is busy. Restore locks and verifies.
	r := ok("works but raced: the PID namespace is busy (%s)", strings.Join(raced, "; "))
	r.Summary = "works but raced"
	return r
}
