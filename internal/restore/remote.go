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
	// results holds what each syscall returned, by op: a later syscall
	// can take one as an argument.
	results []uint64
	// after runs once the queued syscalls have: gockpt closes there the
	// fds the task takes with pidfd_getfd.
	after []func()
	// checks look at results of ops that may fail once they ran.
	checks []check
	// stage names the step queued syscalls belong to, for errors
	// (stageError).
	stage string
}

// stageError is the failure of a queued syscall, with the step it was
// queued in.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

type check struct {
	o     op
	f     func(ret uint64) error
	stage string
}

// queued is one syscall waiting in the list.
type queued struct {
	name    string
	nr      uint64
	args    [6]uint64
	mayFail bool
	// hint, if set, is added to the error of a failure.
	hint string
	// stage is the remote's stage when it was queued.
	stage string
	// refs has bit j set when args[j] is how many entries back the
	// syscall whose result is argument j is.
	refs uint8
}

// op names a syscall of a remote, queued or run: a later syscall can take
// its result as an argument (arg), before gockpt has seen it.
type op int

// arg is an argument of a syscall: a value, or the result of an earlier op.
type arg struct {
	v    uint64
	from op // 0: v
}

// notRun is the result of an op the runner never reached: -ECANCELED.
const notRun = ^uint64(0) - uint64(unix.ECANCELED) + 1

// val is a plain argument.
func val(v uint64) arg { return arg{v: v} }

// res is the result of o as an argument.
func (o op) res() arg { return arg{from: o} }

const (
	// runnerEntry is the size of one entry of the runner's list.
	runnerEntry = 64
	// runnerOps is how many entries the list holds: the last
	// runnerOps*runnerEntry bytes of the scratch area are the list's.
	runnerOps = 512
	// runnerOffset places the runner in the stub's code page, after
	// "syscall; int3".
	runnerOffset = 16
	// runnerMayFail in an entry's control word lets the list go on past
	// it.
	runnerMayFail = 1 << 63
	// runnerRefShift: bit runnerRefShift+j of the control word makes
	// argument j a reference to an earlier entry's result.
	runnerRefShift = 32
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
	o, err := r.enqueue(name, "", nr, false, vals(args))
	if err != nil {
		return 0, err
	}
	return r.value(o)
}

// queue adds a syscall to the list: it runs at the latest when a result is
// needed or at flush, and its failure is reported there. hint, if not
// empty, is added to the error.
func (r *remote) queue(name, hint string, nr uintptr, args ...uint64) error {
	_, err := r.enqueue(name, hint, nr, false, vals(args))
	return err
}

// q queues a syscall without a hint.
func (r *remote) q(name string, nr uintptr, args ...uint64) error {
	return r.queue(name, "", nr, args...)
}

// qop queues a syscall whose arguments may be results of earlier ops, and
// returns its own op.
func (r *remote) qop(name string, nr uintptr, args ...arg) (op, error) {
	return r.enqueue(name, "", nr, false, args)
}

// queueMayFail adds a syscall whose failure is of no matter (a close on
// the way out).
func (r *remote) queueMayFail(name string, nr uintptr, args ...uint64) {
	r.enqueue(name, "", nr, true, vals(args))
}

// qopMayFail is queueMayFail with arguments that may be results of
// earlier ops.
func (r *remote) qopMayFail(name string, nr uintptr, args ...arg) {
	r.enqueue(name, "", nr, true, args)
}

// closeAfterRun closes gockpt's fd once the queued syscalls have run.
func (r *remote) closeAfterRun(fd int) {
	r.after = append(r.after, func() { unix.Close(fd) })
}

// checkResult has f look at what op o returned once it ran (o may fail:
// f decides which failures matter); f's error is the list's.
// An op that ran already is checked at once.
func (r *remote) checkResult(o op, f func(ret uint64) error) error {
	r.checks = append(r.checks, check{o, f, r.stage})
	if int(o) <= len(r.results) {
		return r.runChecks()
	}
	return nil
}

// runChecks runs the checks whose ops ran.
func (r *remote) runChecks() error {
	var err error
	keep := r.checks[:0]
	for _, c := range r.checks {
		if int(c.o) > len(r.results) {
			keep = append(keep, c)
			continue
		}
		if e := c.f(r.results[c.o-1]); e != nil && err == nil {
			err = &stageError{c.stage, e}
		}
	}
	r.checks = keep
	return err
}

// afterRun runs f once the queued syscalls have run.
func (r *remote) afterRun(f func()) { r.after = append(r.after, f) }

func (r *remote) runAfter() {
	after := r.after
	r.after = nil
	for _, f := range after {
		f()
	}
}

// value returns what op o returned, running the list first if o is in it.
// An op that may fail returns -errno when it did.
func (r *remote) value(o op) (uint64, error) {
	if int(o) > len(r.results) {
		if err := r.flush(); err != nil {
			return 0, err
		}
	}
	return r.results[o-1], nil
}

func vals(args []uint64) []arg {
	a := make([]arg, len(args))
	for i, v := range args {
		a[i] = val(v)
	}
	return a
}

// enqueue adds a syscall to the list (or, without a runner, runs it) and
// returns its op. An argument from an op in the list becomes a reference
// the runner resolves; one from an op that already ran is its result.
func (r *remote) enqueue(name, hint string, nr uintptr, mayFail bool, args []arg) (op, error) {
	if len(args) > 6 {
		return 0, fmt.Errorf("task %d: %s: %d syscall arguments", r.pid, name, len(args))
	}
	q := queued{name: name, nr: uint64(nr), mayFail: mayFail, hint: hint, stage: r.stage}
	self := op(len(r.results) + len(r.ops) + 1)
	for j, a := range args {
		switch {
		case a.from == 0:
			q.args[j] = a.v
		case a.from <= 0 || a.from >= self:
			return 0, fmt.Errorf("task %d: %s: argument %d is the result of op %d, not an earlier one", r.pid, name, j, a.from)
		case int(a.from) <= len(r.results):
			q.args[j] = r.results[a.from-1]
		default:
			q.args[j] = uint64(self - a.from)
			q.refs |= 1 << j
		}
	}
	if r.runner == 0 {
		ret, err := r.te.Syscall(q.nr, q.args[:]...)
		if err != nil {
			return 0, fmt.Errorf("task %d: %s: %w", r.pid, name, err)
		}
		r.results = append(r.results, ret)
		if err := r.runChecks(); err != nil {
			return 0, err
		}
		if e := ptrace.Errno(ret); e != 0 && !mayFail {
			err := fmt.Errorf("task %d thread %d: %s: %w", r.pid, r.te.Tid, name, e)
			if hint != "" {
				err = fmt.Errorf("%w%s", err, hint)
			}
			return 0, err
		}
		return self, nil
	}
	r.ops = append(r.ops, q)
	if len(r.ops) == runnerOps {
		if err := r.flush(); err != nil && !mayFail {
			return 0, err
		}
	}
	return self, nil
}

// flush runs the queued syscalls and writes what was put in the scratch
// area since: after it, the task's memory is what the caller expects.
func (r *remote) flush() error {
	defer r.runAfter()
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
	base := len(r.results)
	defer r.runAfter()
	defer func() {
		// The ops of a list that did not run at all keep their places.
		for len(r.results) < base+len(ops) {
			r.results = append(r.results, notRun)
		}
	}()
	list := make([]byte, len(ops)*runnerEntry)
	for i, q := range ops {
		e := list[i*runnerEntry:]
		ctl := q.nr | uint64(q.refs)<<runnerRefShift
		if q.mayFail {
			ctl |= runnerMayFail
		}
		binary.LittleEndian.PutUint64(e, ctl)
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
		startRunner(g, r.runner, listAddr, uint64(len(ops)))
	})
	if err != nil {
		return 0, fmt.Errorf("task %d: running %d syscalls (%s ... %s): %w", r.pid, len(ops), ops[0].name, ops[len(ops)-1].name, err)
	}
	if err := ptrace.ReadMem(r.pid, listAddr, list); err != nil {
		return 0, fmt.Errorf("task %d: read the runner's results: %w", r.pid, err)
	}
	ret := func(i int) uint64 { return binary.LittleEndian.Uint64(list[i*runnerEntry+56:]) }
	left := runnerLeft(&regs)
	if left > uint64(len(ops)) {
		return 0, fmt.Errorf("task %d: the runner stopped with %d of %d syscalls left", r.pid, left, len(ops))
	}
	for i := range ops {
		v := ret(i)
		if i > len(ops)-int(left) {
			v = notRun
		}
		r.results = append(r.results, v)
	}
	checkErr := r.runChecks()
	if left != 0 {
		i := len(ops) - int(left)
		err := fmt.Errorf("task %d thread %d: %s: %w", r.pid, r.te.Tid, ops[i].name, ptrace.Errno(ret(i)))
		if ops[i].hint != "" {
			err = fmt.Errorf("%w%s", err, ops[i].hint)
		}
		if ops[i].stage != "" {
			err = &stageError{ops[i].stage, err}
		}
		return 0, err
	}
	if checkErr != nil {
		return 0, checkErr
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
