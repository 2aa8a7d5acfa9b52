package pidctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrRaced matches (errors.Is) the error NsLastPid gives when other
// processes kept taking the next PID between our write and our clone.
var ErrRaced = errors.New("raced by other processes creating tasks")

// nsLastPidAttempts bounds the retries after losing a race.
const nsLastPidAttempts = 5

const nsLastPidPath = "/proc/sys/kernel/ns_last_pid"

// nsLastPidWriter is writeNsLastPid; tests replace it to lose races.
var nsLastPidWriter = writeNsLastPid

// cloneNsLastPid is the fallback for kernels without set_tid: with the lock
// held, write PID-1 to ns_last_pid, clone without set_tid and verify. The
// lock keeps gockpt processes apart; anything else that creates a task in
// the namespace meanwhile (even a new Go runtime thread) can still take the
// PID first, so a wrong child is thrown away and we try again.
//
// ns_last_pid is that of gockpt's own PID namespace: the child must be
// created in it (no CLONE_NEWPID, parent in gockpt's namespace).
func cloneNsLastPid(parent *Task, req Request) (*Task, error) {
	if req.Flags&unix.CLONE_NEWPID != 0 {
		return nil, fmt.Errorf("task %d: clone PID %d: ns_last_pid cannot place a task in a new PID namespace; needs clone3 set_tid", parent.Tid, req.PID)
	}
	lockPath := req.LockFile
	if lockPath == "" {
		lockPath = DefaultLockFile
	}
	unlock, err := lockNsLastPid(lockPath)
	if err != nil {
		return nil, fmt.Errorf("task %d: clone PID %d: %w", parent.Tid, req.PID, err)
	}
	defer unlock()
	for attempt := 0; attempt < nsLastPidAttempts; attempt++ {
		if pidExists(req.PID) {
			return nil, takenError(req.PID)
		}
		// The write happens on the tracer thread right before the parent
		// enters clone3: no goroutine switch in between that could make the
		// Go runtime start a thread, which would take the PID.
		child, err := cloneOnce(parent, req, false, func() error { return nsLastPidWriter(req.PID - 1) })
		if err != nil {
			return nil, err
		}
		got, perr := innermostPID(child.Tid)
		if perr == nil && got == req.PID {
			return child, nil
		}
		if err := discard(parent, child, req.Flags); err != nil {
			return nil, fmt.Errorf("task %d: clone PID %d: throw away task %d that got PID %d: %w", parent.Tid, req.PID, child.Tid, got, err)
		}
		if perr != nil {
			return nil, fmt.Errorf("task %d: clone PID %d: read the new task's PID: %w", parent.Tid, req.PID, perr)
		}
		if ownThread(req.PID) {
			// Most likely loser of the race: gockpt itself. The Go runtime
			// starts OS threads when it likes, and such a thread now holds
			// the PID for good.
			return nil, fmt.Errorf("task %d: clone PID %d via %s: %w: a thread of gockpt itself took the PID; retry, restore in a new PID namespace, or use a kernel with clone3 set_tid (5.5+)", parent.Tid, req.PID, nsLastPidPath, ErrRaced)
		}
	}
	if pidExists(req.PID) {
		return nil, takenError(req.PID)
	}
	return nil, fmt.Errorf("task %d: clone PID %d via %s: %w %d times; retry, or use a kernel with clone3 set_tid (5.5+)", parent.Tid, req.PID, nsLastPidPath, ErrRaced, nsLastPidAttempts)
}

// ownThread says whether pid is a thread of gockpt other than the main one.
func ownThread(pid int) bool {
	st, err := readStatus(pid)
	return err == nil && st["Tgid"] == strconv.Itoa(os.Getpid()) && pid != os.Getpid()
}

// lockNsLastPid takes the exclusive lock on path, creating it 0600 in a 0700
// directory, and returns its release.
func lockNsLastPid(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ns_last_pid lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ns_last_pid lock: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ns_last_pid lock %s: flock: %w", path, err)
	}
	// Closing the only descriptor releases the flock.
	return func() { f.Close() }, nil
}

// writeNsLastPid writes with raw syscalls: it runs on the tracer thread and
// must not block in the runtime's poller.
func writeNsLastPid(v int) error {
	fd, err := unix.Open(nsLastPidPath, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		_, err = unix.Write(fd, []byte(strconv.Itoa(v)))
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("write %d to %s: %w", v, nsLastPidPath, err)
	}
	return nil
}
