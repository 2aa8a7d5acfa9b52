// Package ptrace drives stopped tasks from outside: seize, interrupt, register
// sets, remote syscalls and detach. It knows nothing about dumping or
// restoring; internal/parasite, internal/dump and internal/restore build on it.
//
// Threading model: a ptrace attachment belongs to the OS thread that made it.
// A Tracer owns one goroutine locked to one OS thread, and every ptrace and
// wait4 call for its tracees runs there (Tracer.Do). Tracee methods hop onto
// that thread themselves, so callers may use them from any goroutine, but one
// Tracer serialises all requests: it is the only lock, and nothing else in the
// package blocks while holding it.
package ptrace

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed is returned by requests made after Close.
var ErrClosed = errors.New("ptrace: tracer closed")

// Tracer runs ptrace requests on one locked OS thread.
type Tracer struct {
	reqs      chan func()
	closeOnce sync.Once
	done      chan struct{}
	// gadgets caches, per thread group, the address of a syscall
	// instruction; only the tracer thread touches it.
	gadgets map[int]uint64
	// parking holds, per thread group, the address of the parking code
	// installed in its vDSO (see ParkingCode).
	parking map[int]uint64
	// stopTimeout bounds the wait for a seized thread to stop.
	stopTimeout time.Duration
	// tid is the tracer thread's id: Do called on it runs f directly.
	tid int
}

// NewTracer starts the tracer thread.
func NewTracer() *Tracer {
	t := &Tracer{reqs: make(chan func()), done: make(chan struct{}), gadgets: map[int]uint64{}, parking: map[int]uint64{}, stopTimeout: DefaultStopTimeout}
	started := make(chan struct{})
	go func() {
		// Never unlocked: the thread dies with the goroutine, so no other
		// goroutine ever runs on a thread that holds attachments.
		runtime.LockOSThread()
		t.tid = unix.Gettid()
		close(started)
		for {
			select {
			case f := <-t.reqs:
				f()
			case <-t.done:
				return
			}
		}
	}()
	<-started
	return t
}

// Do runs f on the tracer thread and returns its error. Called from the
// tracer thread itself (f of an outer Do), it runs f at once: a caller with
// many requests in a row runs them all inside one Do and saves the hop
// between threads each would cost.
func (t *Tracer) Do(f func() error) error {
	if unix.Gettid() == t.tid {
		select {
		case <-t.done:
			return ErrClosed
		default:
		}
		return f()
	}
	var err error
	ran := make(chan struct{})
	select {
	case t.reqs <- func() { err = f(); close(ran) }:
	case <-t.done:
		return ErrClosed
	}
	<-ran
	return err
}

// Close stops the tracer thread. Tracees still attached are detached by the
// kernel when the thread exits; callers detach them explicitly before.
func (t *Tracer) Close() {
	t.closeOnce.Do(func() { close(t.done) })
}

// Error names the task a ptrace request failed on.
type Error struct {
	Op  string
	Tid int
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("task %d: %s: %v", e.Tid, e.Op, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// The main goroutine keeps the main OS thread for itself: a tracer
// goroutine that landed there could never end its thread (Go does not exit
// the main thread), so Close would not release its tracees.
func init() { runtime.LockOSThread() }
