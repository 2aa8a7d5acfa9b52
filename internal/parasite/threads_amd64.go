package parasite

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// The other threads' part of the area (Options.Threads): a header with
// the count, then per thread a stride holding its struct gk_thread_slot
// (72 bytes) at the bottom and its stack above (parasite_thread needs
// little).
const (
	threadsHeader = 64
	threadStride  = 1024
)

// DumpThreads reads what DumpThread reads, for all of tes at once: each
// thread is sent into the blob's parasite_thread_entry with every signal
// blocked, fills its slot, counts itself in and sleeps in the parking
// code's pause loop; then each is stopped and gets its registers and mask
// back. The threads run side by side, where DumpThread takes ten stops
// one after another per thread. Without parking code, with more threads
// than Options.Threads, or in a stopped task (a thread resumed from a
// group-stop stops again at once) it is DumpThread for each.
func (p *Parasite) DumpThreads(tes []*ptrace.Tracee) ([]ThreadInfo, error) {
	if p.park == 0 || len(tes) > p.threadSlots || len(tes) == 0 || slices.ContainsFunc(tes, func(te *ptrace.Tracee) bool { return te.GroupStopped }) {
		out := make([]ThreadInfo, len(tes))
		for i, te := range tes {
			ti, err := p.DumpThread(te)
			if err != nil {
				return nil, fmt.Errorf("thread %d: %w", te.Tid, err)
			}
			out[i] = ti
		}
		return out, nil
	}
	for _, te := range tes {
		if te.Tgid != p.pid || te.Tid == p.leader.Tid {
			return nil, fmt.Errorf("thread %d of task %d: not another thread of task %d", te.Tid, te.Tgid, p.pid)
		}
	}
	if p.done {
		return nil, fmt.Errorf("task %d: parasite already cured", p.pid)
	}
	var out []ThreadInfo
	err := p.tr.Do(func() error {
		var err error
		out, err = p.runThreads(tes)
		return err
	})
	return out, err
}

// runningThread is a thread's own registers and mask while it runs the blob.
type runningThread struct {
	te   *ptrace.Tracee
	regs ptrace.Regs
	mask uint64
}

// runThreads runs on the tracer thread.
func (p *Parasite) runThreads(tes []*ptrace.Tracee) (_ []ThreadInfo, err error) {
	count := p.threads
	if err := ptrace.WriteMem(p.pid, count, make([]byte, 4)); err != nil {
		return nil, err
	}
	var started []runningThread
	// Whatever happens, every thread sent into the blob is stopped and
	// gets its registers and mask back.
	defer func() {
		if rerr := p.stopThreads(started); rerr != nil {
			if err == nil {
				err = rerr
			} else {
				err = fmt.Errorf("%w; then putting the threads back: %v", err, rerr)
			}
		}
	}()
	for i, te := range tes {
		st := runningThread{te: te}
		if st.regs, err = te.GetRegs(); err != nil {
			return nil, err
		}
		if st.mask, err = te.GetSigmask(); err != nil {
			return nil, err
		}
		if err := te.SetSigmask(^uint64(0)); err != nil {
			return nil, err
		}
		slot := p.threads + threadsHeader + uint64(i)*threadStride
		r := st.regs
		enterBlob(&r, p.area+blobThreadEntry, slot+threadStride)
		r.Rdi, r.Rsi, r.Rdx = slot, count, p.park+2 // the pause loop
		if err := te.SetRegs(&r); err != nil {
			te.SetSigmask(st.mask)
			return nil, err
		}
		started = append(started, st)
		if err := unix.PtraceCont(te.Tid, 0); err != nil {
			return nil, fmt.Errorf("thread %d: resume into the parasite: %w", te.Tid, err)
		}
	}
	// Every thread counts itself in before it parks.
	deadline := time.Now().Add(p.timeout)
	var b [4]byte
	for {
		if err := ptrace.ReadMem(p.pid, count, b[:]); err != nil {
			return nil, err
		}
		if n := int(le.Uint32(b[:])); n == len(tes) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("task %d: %d of %d threads done in the parasite after %v", p.pid, le.Uint32(b[:]), len(tes), p.timeout)
		}
		runtime.Gosched()
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
	slots := make([]byte, len(tes)*threadStride)
	if err := ptrace.ReadMem(p.pid, p.threads+threadsHeader, slots); err != nil {
		return nil, err
	}
	out := make([]ThreadInfo, len(tes))
	for i, st := range started {
		s := slots[i*threadStride:]
		if e := int64(le.Uint64(s[56:])); e < 0 {
			return nil, fmt.Errorf("thread %d: %w", st.te.Tid, unix.Errno(-e))
		}
		ti := ThreadInfo{Tid: st.te.Tid, TidAddress: le.Uint64(s), Altstack: decodeStack(s[8:]),
			TimerSlack: le.Uint64(s[32:]), Securebits: le.Uint64(s[40:]), CPUID: le.Uint64(s[48:]),
			Mempolicy: le.Uint64(s[64:])}
		ti.Altstack.Flags |= onAltstack(ti.Altstack, st.regs.Rsp)
		if e := ptrace.Errno(ti.Securebits); e != 0 {
			return nil, fmt.Errorf("thread %d: prctl(PR_GET_SECUREBITS): %w", st.te.Tid, e)
		}
		out[i] = ti
	}
	return out, nil
}

// stopThreads stops each thread runThreads started (it sleeps in the
// parking code's pause loop by now, or is on its way there), checks it
// stopped there and not on a fault, and puts its registers and mask back.
func (p *Parasite) stopThreads(started []runningThread) error {
	var errs []error
	for _, st := range started {
		if err := unix.PtraceInterrupt(st.te.Tid); err != nil {
			errs = append(errs, fmt.Errorf("thread %d: stop: %w", st.te.Tid, err))
		}
	}
	for _, st := range started {
		ws, err := waitStop(st.te.Tid, p.timeout)
		if err != nil {
			errs = append(errs, fmt.Errorf("thread %d: stop: %w", st.te.Tid, err))
			continue
		}
		if ptrace.Event(ws) != unix.PTRACE_EVENT_STOP {
			// A fault in the blob: every signal is blocked, so a
			// signal stop is one it took.
			if r, err := st.te.GetRegs(); err == nil {
				errs = append(errs, fmt.Errorf("thread %d: parasite crashed with %v at %#x (parasite at %#x)", st.te.Tid, ws.StopSignal(), r.Rip, p.area))
			} else {
				errs = append(errs, fmt.Errorf("thread %d: parasite stopped with %v", st.te.Tid, ws))
			}
		} else if r, err := st.te.GetRegs(); err == nil && !parkedInPause(p.park, r.Rip) {
			errs = append(errs, fmt.Errorf("thread %d: stopped at %#x, not in the parking code at %#x", st.te.Tid, r.Rip, p.park))
		}
		if err := st.te.SetRegs(&st.regs); err != nil {
			errs = append(errs, err)
		}
		if err := st.te.SetSigmask(st.mask); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// parkedInPause says whether rip is in the parking code's pause loop.
func parkedInPause(park, rip uint64) bool {
	return rip >= park+2 && rip < park+ptrace.ParkingExit
}
