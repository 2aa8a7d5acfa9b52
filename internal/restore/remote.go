package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// remote drives one stopped thread of a task being restored: injected
// syscalls, with a scratch area inside the task for their arguments.
type remote struct {
	te      *ptrace.Tracee
	pid     int // the thread group
	scratch uint64
	size    uint64
	off     uint64
}

// reset forgets what earlier calls put in the scratch area.
func (r *remote) reset() { r.off = 0 }

// put copies b into the scratch area and returns its address there.
func (r *remote) put(b []byte) (uint64, error) {
	n := (uint64(len(b)) + 15) &^ 15
	if r.off+n > r.size {
		r.reset()
		if n > r.size {
			return 0, fmt.Errorf("task %d: %d bytes of syscall arguments do not fit the %d-byte scratch area", r.pid, len(b), r.size)
		}
	}
	addr := r.scratch + r.off
	if len(b) > 0 {
		if err := ptrace.WriteMem(r.pid, addr, b); err != nil {
			return 0, err
		}
	}
	r.off += n
	return addr, nil
}

// str puts a NUL-terminated string.
func (r *remote) str(s string) (uint64, error) { return r.put(append([]byte(s), 0)) }

// u64s puts little-endian words.
func (r *remote) u64s(v ...uint64) (uint64, error) {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[i*8:], x)
	}
	return r.put(b)
}

// read copies n bytes of the scratch area at addr back.
func (r *remote) read(addr uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	return b, ptrace.ReadMem(r.pid, addr, b)
}

// call runs a syscall in the task and turns -errno into an error naming it.
func (r *remote) call(name string, nr uintptr, args ...uint64) (uint64, error) {
	ret, err := r.te.Syscall(uint64(nr), args...)
	if err != nil {
		return 0, fmt.Errorf("task %d: %s: %w", r.pid, name, err)
	}
	if e := ptrace.Errno(ret); e != 0 {
		return 0, fmt.Errorf("task %d thread %d: %s: %w", r.pid, r.te.Tid, name, e)
	}
	return ret, nil
}

// Syscall numbers gockpt injects that golang.org/x/sys/unix names
// differently or not at all.
const (
	sysRseq         = unix.SYS_RSEQ
	sysPidfdOpen    = unix.SYS_PIDFD_OPEN
	sysPidfdGetfd   = unix.SYS_PIDFD_GETFD
	sysCloseRange   = unix.SYS_CLOSE_RANGE
	sysTimerCreate  = unix.SYS_TIMER_CREATE
	sysTimerSettime = unix.SYS_TIMER_SETTIME
)
