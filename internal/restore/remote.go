package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// remote drives one stopped thread of a task being restored: injected
// syscalls, with a scratch area inside the task for their arguments.
//
// Syscalls go through the restore runner (blob/runner.S) in the stub area:
// queue adds one to a list, and the list runs inside the task in a single
// ptrace stop when a result is needed (call), at flush, or when it is
// full. Arguments put in the scratch area are kept here until then and
// written with the list in one process_vm_writev. A remote without a runner
// (the stub before its code page exists, the last syscall that unmaps the
// stub area) injects each syscall on its own.
type remote struct {
	te      *ptrace.Tracee
	pid     int // the thread group
	scratch uint64
	size    uint64
	off     uint64
	// runner is the runner's address in the task; 0: inject one by one.
	runner uint64
	// ops is the queued list; buf holds the scratch bytes from bufOff on
	// that it needs, not yet written.
	ops    []queued
	buf    []byte
	bufOff uint64
}

// queued is one syscall waiting in the list.
type queued struct {
	name    string
	nr      uint64
	args    [6]uint64
	mayFail bool
	// hint, if set, is added to the error of a failure.
	hint string
}

const (
	// runnerEntry is the size of one entry of the runner's list.
	runnerEntry = 64
	// runnerOps is how many entries the list holds: the last
	// runnerOps*runnerEntry bytes of the scratch area are the list's.
	runnerOps = 512
	// runnerOffset places the runner in the stub's code page, after
	// "syscall; int3".
	runnerOffset = 16
	// runnerMayFail in an entry's number lets the list go on past it.
	runnerMayFail = 1 << 63
)

// argSize is the part of the scratch area that syscall arguments use.
func (r *remote) argSize() uint64 {
	if r.runner == 0 {
		return r.size
	}
	return r.size - runnerOps*runnerEntry
}

// reset forgets what earlier calls put in the scratch area. Arguments of
// syscalls still queued are kept.
func (r *remote) reset() {
	if len(r.ops) == 0 {
		r.off = 0
	}
}

// put copies b into the scratch area and returns its address there.
func (r *remote) put(b []byte) (uint64, error) {
	n := (uint64(len(b)) + 15) &^ 15
	if r.off+n > r.argSize() {
		if err := r.flush(); err != nil {
			return 0, err
		}
		r.reset()
		if n > r.argSize() {
			return 0, fmt.Errorf("task %d: %d bytes of syscall arguments do not fit the %d-byte scratch area", r.pid, len(b), r.argSize())
		}
	}
	addr := r.scratch + r.off
	if len(b) > 0 {
		if r.runner != 0 {
			if len(r.buf) == 0 {
				r.bufOff = r.off
			}
			r.buf = append(r.buf[:r.off-r.bufOff], b...)
		} else if err := ptrace.WriteMem(r.pid, addr, b); err != nil {
			return 0, err
		}
	}
	r.off += n
	if r.runner != 0 && len(r.buf) > 0 {
		// Keep the padding so that the next put lands at its offset.
		r.buf = append(r.buf, make([]byte, r.off-r.bufOff-uint64(len(r.buf)))...)
	}
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

// read copies n bytes of the scratch area at addr back, once every queued
// syscall has run.
func (r *remote) read(addr uint64, n int) ([]byte, error) {
	if err := r.flush(); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	return b, ptrace.ReadMem(r.pid, addr, b)
}

// call runs a syscall in the task, after the queued ones, and turns -errno
// into an error naming it.
func (r *remote) call(name string, nr uintptr, args ...uint64) (uint64, error) {
	if r.runner == 0 {
		ret, err := r.te.Syscall(uint64(nr), args...)
		if err != nil {
			return 0, fmt.Errorf("task %d: %s: %w", r.pid, name, err)
		}
		if e := ptrace.Errno(ret); e != 0 {
			return 0, fmt.Errorf("task %d thread %d: %s: %w", r.pid, r.te.Tid, name, e)
		}
		return ret, nil
	}
	r.add(name, "", uint64(nr), false, args)
	return r.run()
}

// queue adds a syscall to the list: it runs at the latest when a result is
// needed or at flush, and its failure is reported there. hint, if not
// empty, is added to the error.
func (r *remote) queue(name, hint string, nr uintptr, args ...uint64) error {
	if r.runner == 0 {
		_, err := r.call(name, nr, args...)
		if err != nil && hint != "" {
			err = fmt.Errorf("%w%s", err, hint)
		}
		return err
	}
	r.add(name, hint, uint64(nr), false, args)
	if len(r.ops) == runnerOps {
		return r.flush()
	}
	return nil
}

// q queues a syscall without a hint.
func (r *remote) q(name string, nr uintptr, args ...uint64) error {
	return r.queue(name, "", nr, args...)
}

// queueMayFail adds a syscall whose failure is of no matter (a close on
// the way out).
func (r *remote) queueMayFail(name string, nr uintptr, args ...uint64) {
	if r.runner == 0 {
		r.call(name, nr, args...)
		return
	}
	r.add(name, "", uint64(nr), true, args)
	if len(r.ops) == runnerOps {
		r.flush()
	}
}

func (r *remote) add(name, hint string, nr uint64, mayFail bool, args []uint64) {
	q := queued{name: name, nr: nr, mayFail: mayFail, hint: hint}
	copy(q.args[:], args)
	r.ops = append(r.ops, q)
}

// flush runs the queued syscalls and writes what was put in the scratch
// area since: after it, the task's memory is what the caller expects.
func (r *remote) flush() error {
	if len(r.ops) == 0 {
		if len(r.buf) == 0 {
			return nil
		}
		err := ptrace.WriteMem(r.pid, r.scratch+r.bufOff, r.buf)
		r.buf = r.buf[:0]
		return err
	}
	_, err := r.run()
	return err
}

// run runs the list and returns the last entry's result.
func (r *remote) run() (uint64, error) {
	ops := r.ops
	r.ops = nil
	list := make([]byte, len(ops)*runnerEntry)
	for i, q := range ops {
		e := list[i*runnerEntry:]
		nr := q.nr
		if q.mayFail {
			nr |= runnerMayFail
		}
		binary.LittleEndian.PutUint64(e, nr)
		for j, a := range q.args {
			binary.LittleEndian.PutUint64(e[8+8*j:], a)
		}
	}
	listAddr := r.scratch + r.argSize()
	segs := []ptrace.MemSeg{{Addr: listAddr, Data: list}}
	if len(r.buf) > 0 {
		segs = append(segs, ptrace.MemSeg{Addr: r.scratch + r.bufOff, Data: r.buf})
		r.buf = r.buf[:0]
	}
	if err := ptrace.WriteMemSegs(r.pid, segs); err != nil {
		return 0, fmt.Errorf("task %d: write %d syscalls for the runner: %w", r.pid, len(ops), err)
	}
	regs, err := r.te.RunCode(func(g *ptrace.Regs) {
		g.Rip, g.R12, g.R13 = r.runner, listAddr, uint64(len(ops))
	})
	if err != nil {
		return 0, fmt.Errorf("task %d: running %d syscalls (%s ... %s): %w", r.pid, len(ops), ops[0].name, ops[len(ops)-1].name, err)
	}
	if err := ptrace.ReadMem(r.pid, listAddr, list); err != nil {
		return 0, fmt.Errorf("task %d: read the runner's results: %w", r.pid, err)
	}
	ret := func(i int) uint64 { return binary.LittleEndian.Uint64(list[i*runnerEntry+56:]) }
	if left := regs.R13; left != 0 {
		i := len(ops) - int(left)
		if i < 0 || i >= len(ops) {
			return 0, fmt.Errorf("task %d: the runner stopped with %d of %d syscalls left", r.pid, left, len(ops))
		}
		err := fmt.Errorf("task %d thread %d: %s: %w", r.pid, r.te.Tid, ops[i].name, ptrace.Errno(ret(i)))
		if ops[i].hint != "" {
			err = fmt.Errorf("%w%s", err, ops[i].hint)
		}
		return 0, err
	}
	// Every entry ran; a failure is one that may fail (call's own entry
	// may not: its failure stops the runner, above).
	return ret(len(ops) - 1), nil
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
