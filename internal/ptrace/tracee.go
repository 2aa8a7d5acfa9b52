package ptrace

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Regs is the x86-64 general register set (NT_PRSTATUS).
type Regs = unix.PtraceRegs

// SiginfoSize is the size of one siginfo_t as PTRACE_PEEKSIGINFO copies it.
const SiginfoSize = 128

// Tracee is one seized thread, stopped unless a method says otherwise.
type Tracee struct {
	Tid  int
	Tgid int
	t    *Tracer
	// Stopped in group-stop (SIGSTOP etc.) when seized: it must stay stopped.
	GroupStopped bool
	StopSignal   int
	// gadget, when set, is where injected syscalls run (UseSyscallAt).
	gadget uint64
	// children auto-attached during the last injected syscall.
	children []int
	// parked holds the state Park saved, until Unpark.
	parked *parkedState
}

// Seize attaches to tid with PTRACE_SEIZE and stops it with PTRACE_INTERRUPT.
// A signal that becomes due while we wait for the stop is delivered as it
// would have been without us, so seizing never loses or reorders signals.
// A thread that does not stop within the tracer's stop timeout is a
// *NotStoppedError, and stays attached until the Tracer is closed.
func (t *Tracer) Seize(tid int) (*Tracee, error) {
	return t.seize(tid, tgidOf(tid))
}

// seize is Seize of a thread whose thread group is known.
func (t *Tracer) seize(tid, tgid int) (*Tracee, error) {
	te := &Tracee{Tid: tid, Tgid: tgid, t: t}
	err := t.Do(func() error {
		if err := seize(tid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
			return &Error{"seize", tid, err}
		}
		if err := unix.PtraceInterrupt(tid); err != nil {
			unix.PtraceDetach(tid)
			return &Error{"interrupt", tid, err}
		}
		start := time.Now()
		for {
			ws, ok, err := WaitTimeout(tid, t.stopTimeout-time.Since(start))
			if err != nil {
				return &Error{"wait for stop", tid, err}
			}
			if !ok {
				return notStopped(tgidOf(tid), tid, t.stopTimeout)
			}
			if ws.Exited() || ws.Signaled() {
				return &Error{"wait for stop", tid, unix.ESRCH}
			}
			if !ws.Stopped() {
				continue
			}
			sig := ws.StopSignal()
			if Event(ws) == unix.PTRACE_EVENT_STOP {
				// An event stop with a stop signal is a group-stop: the task
				// was (or just became) stopped by job control.
				if sig == unix.SIGSTOP || sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU {
					te.GroupStopped = true
					te.StopSignal = int(sig)
				}
				return nil
			}
			// Signal-delivery-stop: let the signal through and keep waiting
			// for the interrupt, which stays pending.
			if err := unix.PtraceCont(tid, int(sig)); err != nil {
				return &Error{"deliver pending signal", tid, err}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return te, nil
}

// Event is the PTRACE_EVENT_* of a ptrace stop, 0 for a signal-delivery
// stop. Unlike WaitStatus.TrapCause it also sees the events whose stop
// signal is not SIGTRAP: a group-stop of a seized task is PTRACE_EVENT_STOP
// with SIGSTOP, SIGTSTP, SIGTTIN or SIGTTOU.
func Event(ws unix.WaitStatus) int {
	if !ws.Stopped() {
		return -1
	}
	return int(ws>>16) & 0xff
}

func wait(tid int) (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(tid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		return ws, err
	}
}

// Tracer is the tracer this tracee belongs to.
func (te *Tracee) Tracer() *Tracer { return te.t }

func (te *Tracee) do(op string, f func() error) error {
	return te.t.Do(func() error {
		if err := f(); err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				return err
			}
			return &Error{op, te.Tid, err}
		}
		return nil
	})
}

// Detach lets the thread run again; a thread seized in group-stop is left
// stopped, as it was, with its own stop signal: the kernel puts a detached
// thread back into the group-stop still in effect (nothing but SIGCONT ends
// it, however often ptrace resumed the thread), so nothing is queued.
func (te *Tracee) Detach() error {
	if te.GroupStopped {
		return te.DetachIntoStop()
	}
	return te.do("detach", func() error { return unix.PtraceDetach(te.Tid) })
}

// DetachIntoStop detaches a thread whose thread group is in group-stop, or
// has a stop signal queued, and returns once the thread shows it stopped.
func (te *Tracee) DetachIntoStop() error {
	return te.do("detach stopped", func() error {
		if err := unix.PtraceDetach(te.Tid); err != nil {
			return err
		}
		return waitGroupStop(te.Tgid, te.Tid)
	})
}

// DetachStopped detaches leaving the thread in group-stop, for
// --leave-stopped: SIGSTOP is queued first, so it stops as soon as it runs.
// A thread seized in group-stop stays in it as it was.
func (te *Tracee) DetachStopped() error {
	if te.GroupStopped {
		return te.Detach()
	}
	return te.do("detach stopped", func() error {
		if err := unix.Tgkill(te.Tgid, te.Tid, unix.SIGSTOP); err != nil {
			return err
		}
		_, err := rawPtrace(unix.PTRACE_DETACH, te.Tid, 0, uintptr(unix.SIGSTOP))
		if err != nil {
			return err
		}
		return waitGroupStop(te.Tgid, te.Tid)
	})
}

// waitGroupStop returns once the thread shows state T (or is gone), so a
// caller that looks at it after DetachStopped sees it stopped, not still on
// its way to the signal.
func waitGroupStop(tgid, tid int) error {
	path := fmt.Sprintf("/proc/%d/task/%d/stat", tgid, tid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // gone
		}
		// The state follows the last ')' (comm may hold parentheses).
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return nil
		}
		switch st := b[i+2]; st {
		case 'T', 't', 'Z', 'X':
			return nil
		default:
			if time.Now().After(deadline) {
				return fmt.Errorf("thread %d did not stop within 5 s (state %c); send it SIGSTOP", tid, st)
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// GetRegs reads the general registers.
func (te *Tracee) GetRegs() (Regs, error) {
	var r Regs
	err := te.do("get registers", func() error { return unix.PtraceGetRegs(te.Tid, &r) })
	return r, err
}

// SetRegs writes the general registers.
func (te *Tracee) SetRegs(r *Regs) error {
	return te.do("set registers", func() error { return unix.PtraceSetRegs(te.Tid, r) })
}

// maxXstate bounds the xsave buffer we offer; the kernel returns the real
// size (11008 bytes with AVX-512 and AMX), and we keep exactly that.
const maxXstate = 64 << 10

// GetXstate reads the xsave area (NT_X86_XSTATE), sized by the kernel.
func (te *Tracee) GetXstate() ([]byte, error) {
	buf := make([]byte, maxXstate)
	var n int
	err := te.do("get xstate", func() error {
		var err error
		n, err = getRegset(te.Tid, NTX86Xstate, buf)
		return err
	})
	if err != nil {
		return nil, err
	}
	return buf[:n:n], nil
}

// SetXstate writes the xsave area back.
func (te *Tracee) SetXstate(x []byte) error {
	if len(x) == 0 {
		return &Error{"set xstate", te.Tid, unix.EINVAL}
	}
	return te.do("set xstate", func() error { return setRegset(te.Tid, NTX86Xstate, x) })
}

// GetSigmask reads the blocked-signal mask.
func (te *Tracee) GetSigmask() (uint64, error) {
	var m uint64
	err := te.do("get sigmask", func() error {
		var err error
		m, err = getSigmask(te.Tid)
		return err
	})
	return m, err
}

// SetSigmask writes the blocked-signal mask.
func (te *Tracee) SetSigmask(m uint64) error {
	return te.do("set sigmask", func() error { return setSigmask(te.Tid, m) })
}

// PendingSignals copies the queued siginfos of the thread (shared=false) or of
// its thread group (shared=true), without dequeuing them.
func (te *Tracee) PendingSignals(shared bool) ([][]byte, error) {
	var out [][]byte
	err := te.do("peek siginfo", func() error {
		buf := make([]byte, 32*SiginfoSize)
		for off := uint64(0); ; {
			n, err := peekSiginfo(te.Tid, off, shared, buf)
			if err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			for i := 0; i < n; i++ {
				si := make([]byte, SiginfoSize)
				copy(si, buf[i*SiginfoSize:])
				out = append(out, si)
			}
			off += uint64(n)
		}
	})
	return out, err
}

// Rseq reads the thread's rseq registration; a zero pointer means none.
func (te *Tracee) Rseq() (RseqConfig, error) {
	var c RseqConfig
	err := te.do("get rseq configuration", func() error {
		var err error
		c, err = getRseqConfig(te.Tid)
		return err
	})
	return c, err
}

// SyscallUserDispatch reads the thread's syscall user dispatch
// configuration (Linux 6.4+); a zero Mode means off.
func (te *Tracee) SyscallUserDispatch() (SUDConfig, error) {
	var c SUDConfig
	err := te.do("get syscall user dispatch configuration", func() error {
		var err error
		c, err = getSUDConfig(te.Tid)
		return err
	})
	return c, err
}

// SeccompFilters returns the thread's seccomp filters, innermost (most
// recently installed) first, each as raw struct sock_filter instructions.
func (te *Tracee) SeccompFilters() ([][]byte, error) {
	var out [][]byte
	err := te.do("get seccomp filter", func() error {
		for idx := 0; ; idx++ {
			n, err := seccompFilter(te.Tid, idx, nil)
			if err == unix.ENOENT {
				return nil
			}
			if err != nil {
				if idx == 0 && err == unix.EINVAL {
					return nil // no filters, or seccomp mode strict
				}
				return err
			}
			buf := make([]byte, n*8)
			if _, err := seccompFilter(te.Tid, idx, buf); err != nil {
				return err
			}
			out = append(out, buf)
		}
	})
	return out, err
}

// ReadMem copies len(buf) bytes from the tracee at addr (process_vm_readv,
// no ptrace stop needed).
func ReadMem(pid int, addr uint64, buf []byte) error {
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("task %d: read %d bytes at %#x: %w", pid, len(buf), addr, err)
	}
	if n != len(buf) {
		return fmt.Errorf("task %d: read %d bytes at %#x: short read of %d", pid, len(buf), addr, n)
	}
	return nil
}

// WriteMem copies buf into the tracee at addr (process_vm_writev).
func WriteMem(pid int, addr uint64, buf []byte) error {
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	if err != nil {
		return fmt.Errorf("task %d: write %d bytes at %#x: %w", pid, len(buf), addr, err)
	}
	if n != len(buf) {
		// The rest is not writable this way (e.g. the next area is
		// read-only): EFAULT, as when nothing could be written.
		return fmt.Errorf("task %d: write %d bytes at %#x: short write of %d: %w", pid, len(buf), addr, n, unix.EFAULT)
	}
	return nil
}

// MemSeg is a piece of memory to write into a tracee.
type MemSeg struct {
	Addr uint64
	Data []byte
}

// WriteMemSegs writes every segment into the tracee with one
// process_vm_writev.
func WriteMemSegs(pid int, segs []MemSeg) error {
	_, err := WriteMemSegsN(pid, segs)
	return err
}

// WriteMemSegsN is WriteMemSegs that also returns how many bytes were
// written: on a short write (the rest is not writable this way), the error
// wraps EFAULT.
func WriteMemSegsN(pid int, segs []MemSeg) (int, error) {
	local := make([]unix.Iovec, 0, len(segs))
	remote := make([]unix.RemoteIovec, 0, len(segs))
	total := 0
	for _, s := range segs {
		if len(s.Data) == 0 {
			continue
		}
		iov := unix.Iovec{Base: &s.Data[0]}
		iov.SetLen(len(s.Data))
		local = append(local, iov)
		remote = append(remote, unix.RemoteIovec{Base: uintptr(s.Addr), Len: len(s.Data)})
		total += len(s.Data)
	}
	if total == 0 {
		return 0, nil
	}
	n, err := unix.ProcessVMWritev(pid, local, remote, 0)
	if err != nil {
		return 0, fmt.Errorf("task %d: write %d bytes in %d pieces at %#x: %w", pid, total, len(local), remote[0].Base, err)
	}
	if n != total {
		return n, fmt.Errorf("task %d: write %d bytes in %d pieces at %#x: short write of %d: %w", pid, total, len(local), remote[0].Base, n, unix.EFAULT)
	}
	return n, nil
}

// Errno extracts the errno of a remote syscall result, or 0.
func Errno(ret uint64) syscall.Errno {
	if r := int64(ret); r < 0 && r >= -4095 {
		return syscall.Errno(-r)
	}
	return 0
}

// TLS GDT slots on x86-64 (GDT_ENTRY_TLS_MIN .. +GDT_ENTRY_TLS_ENTRIES-1).
const (
	TLSMinEntry = 12
	TLSEntries  = 3
)

// ThreadAreas reads the thread's three TLS GDT slots (set_thread_area).
func (te *Tracee) ThreadAreas() ([]UserDesc, error) {
	out := make([]UserDesc, TLSEntries)
	err := te.do("get thread area", func() error {
		for i := range out {
			d, err := getThreadArea(te.Tid, TLSMinEntry+i)
			if err != nil {
				return err
			}
			out[i] = d
		}
		return nil
	})
	return out, err
}

// SetThreadArea writes one TLS GDT slot.
func (te *Tracee) SetThreadArea(d UserDesc) error {
	return te.do("set thread area", func() error { return setThreadArea(te.Tid, int(d.EntryNumber), d) })
}

// RunToExit lets the thread run until its thread group exits, delivering
// every signal it stops for; it returns how it ended. Restore uses it to
// turn a rebuilt task into the zombie it was.
func (te *Tracee) RunToExit() (unix.WaitStatus, error) {
	var ws unix.WaitStatus
	err := te.do("run to exit", func() error {
		sig := 0
		for {
			if err := unix.PtraceCont(te.Tid, sig); err != nil {
				return err
			}
			var err error
			ws, err = wait(te.Tid)
			if err != nil {
				return err
			}
			if ws.Exited() || ws.Signaled() {
				return nil
			}
			sig = 0
			if ws.Stopped() && ws.TrapCause() <= 0 && ws.StopSignal() != unix.SIGTRAP|0x80 {
				sig = int(ws.StopSignal())
			}
			if ws.TrapCause() == unix.PTRACE_EVENT_EXIT {
				sig = 0
			}
		}
	})
	return ws, err
}

// Adopt returns a Tracee for a thread this tracer is already attached to
// and that is stopped: a child the kernel auto-attached on an injected
// clone.
func (t *Tracer) Adopt(tid int) *Tracee {
	return &Tracee{Tid: tid, Tgid: tgidOf(tid), t: t}
}

// AdoptIn is Adopt of a thread whose thread group the caller knows (one
// it just made): /proc is not read, which costs with many threads.
func (t *Tracer) AdoptIn(tid, tgid int) *Tracee {
	return &Tracee{Tid: tid, Tgid: tgid, t: t}
}
