package ptrace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// syscallInsn is x86-64 "syscall".
var syscallInsn = []byte{0x0f, 0x05}

// allSignals blocks every signal the kernel lets a task block while we run
// injected syscalls: a signal arriving then stays queued instead of being
// delivered into a register state that is not the task's own.
const allSignals = ^uint64(0)

// Syscall runs syscall nr with args inside the stopped tracee and returns the
// raw result (a negative errno on failure, see Errno). The tracee's registers
// and signal mask are as before when it returns, whatever the outcome.
//
// The syscall instruction executed is one already in the task's vDSO, so no
// code in the target is modified. A task stopped inside a syscall has
// orig_rax >= 0; we run ours with orig_rax = -1 so the kernel does not apply
// syscall-restart logic to it, and the saved registers bring the original
// restart back when the task resumes.
func (te *Tracee) Syscall(nr uint64, args ...uint64) (uint64, error) {
	return te.Inject(Injection{Nr: nr, Args: args})
}

// Injection is one syscall to run inside a stopped thread, with hooks for
// callers that need more than the result (pidctl's clone3).
type Injection struct {
	Nr   uint64
	Args []uint64
	// Prepare, if set, runs on the tracer thread right before the thread
	// is resumed into the syscall, with nothing else in between.
	Prepare func() error
	// OnEvent, if set, runs on the tracer thread at each fork, vfork or
	// clone event stop, with the event and the new task's id. Without it
	// the new tasks are collected for SyscallFork.
	OnEvent func(event, child int) error
}

// ExitedError reports that the thread ended while an injected syscall ran
// (an injected exit, or a kill from outside).
type ExitedError struct{ Status unix.WaitStatus }

func (e *ExitedError) Error() string {
	if e.Status.Signaled() {
		return fmt.Sprintf("task was killed by signal %d", e.Status.Signal())
	}
	return fmt.Sprintf("task exited with status %d", e.Status.ExitStatus())
}

// Inject runs in.Nr with in.Args inside the stopped thread and returns the
// raw result; registers and signal mask are put back, unless the thread
// ended (ExitedError).
func (te *Tracee) Inject(in Injection) (uint64, error) {
	ret, _, err := te.inject(in)
	return ret, err
}

// SyscallFork runs an injected fork/clone/clone3 whose child the kernel
// auto-attaches to us (SetOptions with TraceFork/TraceClone first). It
// returns the syscall's result and the new child, adopted and stopped
// before it ran a single instruction; the caller sets its registers.
func (te *Tracee) SyscallFork(nr uint64, args ...uint64) (uint64, *Tracee, error) {
	ret, kids, err := te.inject(Injection{Nr: nr, Args: args})
	if err != nil || Errno(ret) != 0 || len(kids) == 0 {
		return ret, nil, err
	}
	child := &Tracee{Tid: kids[0], t: te.t}
	err = te.t.Do(func() error {
		// An auto-attached child starts in a PTRACE_EVENT_STOP.
		ws, err := wait(child.Tid)
		if err != nil {
			return &Error{"wait for new child", child.Tid, err}
		}
		if ws.Exited() || ws.Signaled() {
			return &Error{"wait for new child", child.Tid, &ExitedError{ws}}
		}
		if !ws.Stopped() || ws.TrapCause() != unix.PTRACE_EVENT_STOP {
			return &Error{"wait for new child", child.Tid, fmt.Errorf("first stop is %v, not PTRACE_EVENT_STOP", ws)}
		}
		return nil
	})
	if err != nil {
		return ret, nil, err
	}
	child.Tgid = tgidOf(child.Tid)
	return ret, child, nil
}

// Ptrace options for SetOptions.
const (
	TraceFork  = unix.PTRACE_O_TRACEFORK
	TraceVfork = unix.PTRACE_O_TRACEVFORK
	TraceClone = unix.PTRACE_O_TRACECLONE
	// SuspendSeccomp lets injected syscalls pass a seccomp filter the task
	// already has (restore installs filters before the last syscalls).
	SuspendSeccomp = 1 << 21
)

// SetOptions sets ptrace options (PTRACE_O_TRACESYSGOOD is always kept).
func (te *Tracee) SetOptions(opts int) error {
	return te.do("set options", func() error {
		return unix.PtraceSetOptions(te.Tid, opts|unix.PTRACE_O_TRACESYSGOOD)
	})
}

func (te *Tracee) inject(in Injection) (uint64, []int, error) {
	var ret [1]uint64
	kids, err := te.injectAll([]Injection{in}, ret[:])
	return ret[0], kids, err
}

// InjectAll runs the syscalls of ins one after another inside the stopped
// thread and returns their raw results. The registers and signal mask are
// saved and put back once for all of them, which spares five ptrace
// requests per syscall after the first. It stops at the first syscall
// that could not be run (an error, not an errno: results after it are 0).
func (te *Tracee) InjectAll(ins ...Injection) ([]uint64, error) {
	rets := make([]uint64, len(ins))
	_, err := te.injectAll(ins, rets)
	return rets, err
}

func (te *Tracee) injectAll(ins []Injection, rets []uint64) ([]int, error) {
	for _, in := range ins {
		if len(in.Args) > 6 {
			return nil, fmt.Errorf("task %d: syscall %d: %d arguments, at most 6", te.Tid, in.Nr, len(in.Args))
		}
	}
	op := "injected syscall"
	if len(ins) == 1 {
		op = fmt.Sprintf("injected syscall %d", ins[0].Nr)
	}
	var kids []int
	err := te.do(op, func() error {
		gadget, err := te.syscallGadget()
		if err != nil {
			return err
		}
		return te.preserving(func(orig Regs) error {
			for i, in := range ins {
				r := orig
				SetSyscall(&r, gadget, in.Nr, in.Args...)
				te.children = nil
				onEvent := in.OnEvent
				if onEvent == nil {
					onEvent = func(_, child int) error { te.children = append(te.children, child); return nil }
				}
				if in.Prepare != nil {
					if err := in.Prepare(); err != nil {
						return err
					}
				}
				ret, err := te.runSyscall(&r, in.Nr, onEvent)
				kids = te.children
				if err != nil {
					if len(ins) > 1 {
						err = fmt.Errorf("syscall %d: %w", in.Nr, err)
					}
					return err
				}
				rets[i] = ret
			}
			return nil
		})
	})
	return kids, err
}

// preserving runs f (on the tracer thread) with every signal blocked, then
// puts the thread's registers and signal mask back as they were, even when
// f failed, unless the thread ended (ExitedError): f gets the registers to
// start from.
func (te *Tracee) preserving(f func(orig Regs) error) error {
	var orig Regs
	if err := unix.PtraceGetRegs(te.Tid, &orig); err != nil {
		return err
	}
	mask, err := getSigmask(te.Tid)
	if err != nil {
		return err
	}
	if err := setSigmask(te.Tid, allSignals); err != nil {
		return err
	}
	err = f(orig)
	var ex *ExitedError
	if errors.As(err, &ex) {
		return err // nothing left to put back
	}
	if e := unix.PtraceSetRegs(te.Tid, &orig); e != nil && err == nil {
		err = fmt.Errorf("restore registers: %w", e)
	}
	if e := setSigmask(te.Tid, mask); e != nil && err == nil {
		err = fmt.Errorf("restore sigmask: %w", e)
	}
	return err
}

// runSyscall sets r, resumes to syscall entry and then exit, and returns rax.
// Runs on the tracer thread.
func (te *Tracee) runSyscall(r *Regs, nr uint64, onEvent func(event, child int) error) (uint64, error) {
	if err := unix.PtraceSetRegs(te.Tid, r); err != nil {
		return 0, err
	}
	for stage := 0; stage < 2; {
		if err := unix.PtraceSyscall(te.Tid, 0); err != nil {
			return 0, err
		}
		ws, err := wait(te.Tid)
		if err != nil {
			return 0, err
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return 0, &ExitedError{ws}
		case !ws.Stopped():
			continue
		case ws.StopSignal() == unix.SIGTRAP|0x80:
			stage++
		case Event(ws) == unix.PTRACE_EVENT_STOP:
			// Group-stop or a new interrupt: resume into the syscall again.
		case ws.TrapCause() == unix.PTRACE_EVENT_FORK || ws.TrapCause() == unix.PTRACE_EVENT_VFORK || ws.TrapCause() == unix.PTRACE_EVENT_CLONE:
			// An injected fork/clone with auto-attach on.
			msg, err := unix.PtraceGetEventMsg(te.Tid)
			if err != nil {
				return 0, err
			}
			if err := onEvent(ws.TrapCause(), int(msg)); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("unexpected stop %v (signal %d) while running injected syscall %d", ws, ws.StopSignal(), nr)
		}
		if stage == 1 {
			var entry Regs
			if err := unix.PtraceGetRegs(te.Tid, &entry); err != nil {
				return 0, err
			}
			if entry.Orig_rax != nr {
				return 0, fmt.Errorf("injected syscall entered as %d, not %d", int64(entry.Orig_rax), nr)
			}
		}
	}
	var out Regs
	if err := unix.PtraceGetRegs(te.Tid, &out); err != nil {
		return 0, err
	}
	return out.Rax, nil
}

// parkingCode is where injected syscalls run: the syscall, then a loop of
// pause(2). While gockpt lives, the thread never gets past the syscall: it
// stops at the syscall exit and gets its registers back. If gockpt dies in
// between, the kernel lets the thread go, and it parks in pause with every
// signal blocked instead of running on with registers that are not its own;
// the parasite watchdog then puts its saved state back.
//
// From ParkingExit on, the parasite leaves (GK_CMD_PARK): the syscall is
// the munmap of its whole area, the next one closes its socket (fd in
// r12), which tells gockpt that both are done, and the thread parks.
//
//	 0: 0f 05           syscall
//	 2: b8 22 00 00 00  mov $34 (pause), %eax
//	 7: 0f 05           syscall
//	 9: eb f7           jmp 2
//	11: 0f 05           syscall            (ParkingExit: munmap)
//	13: 4c 89 e7        mov %r12, %rdi
//	16: b8 03 00 00 00  mov $3 (close), %eax
//	21: 0f 05           syscall
//	23: eb e9           jmp 2
var parkingCode = []byte{
	0x0f, 0x05, 0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7,
	0x0f, 0x05, 0x4c, 0x89, 0xe7, 0xb8, 0x03, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xe9,
}

// ParkingCodeLen is the size of the parking code.
const ParkingCodeLen = 25

// ParkingExit is the offset of the parasite's way out in the parking code.
const ParkingExit = 11

// parkingOffset places the parking code near the end of the vDSO, in the
// zero padding after its section headers that nothing reads or runs.
const parkingOffset = 64

// ParkingAddr returns where the parking code of task pid is, or would be:
// the end of its vDSO, and whether the code is there now.
func ParkingAddr(pid int) (uint64, bool, error) {
	_, end, err := vdsoRange(pid)
	if err != nil {
		return 0, false, err
	}
	addr := end - parkingOffset
	b := make([]byte, len(parkingCode))
	if err := ReadMem(pid, addr, b); err != nil {
		return addr, false, err
	}
	return addr, bytes.Equal(b, parkingCode), nil
}

// installParking writes the parking code into the task's vDSO through
// /proc/PID/mem (a private copy of that page, as a debugger's breakpoint
// makes), after checking that the bytes there are padding. Nothing in the
// task's address space changes shape: /proc/PID/maps stays the same.
func installParking(pid int) (uint64, error) {
	addr, there, err := ParkingAddr(pid)
	if err != nil {
		return 0, err
	}
	if there {
		return addr, nil
	}
	cur := make([]byte, len(parkingCode)+8)
	if err := ReadMem(pid, addr-8, cur); err != nil {
		return 0, err
	}
	if !bytes.Equal(cur, make([]byte, len(cur))) {
		return 0, fmt.Errorf("the end of the vDSO of task %d is not padding", pid)
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.WriteAt(parkingCode, int64(addr)); err != nil {
		return 0, fmt.Errorf("write parking code into the vDSO of task %d: %w", pid, err)
	}
	return addr, nil
}

// syscallGadget returns where the task's injected syscalls run: the
// parking code, installed on first use; a bare syscall instruction of the
// vDSO only where the parking code cannot be written. Runs on the tracer
// thread, which also serialises the tracer's cache. A cached address is
// checked before use: the vDSO may have moved (restore moves it) or the PID
// may belong to another process now.
func (te *Tracee) syscallGadget() (uint64, error) {
	tgid := te.Tgid
	if te.gadget != 0 {
		return te.gadget, nil
	}
	if g, ok := te.t.gadgets[tgid]; ok {
		var insn [2]byte
		if ReadMem(tgid, g, insn[:]) == nil && insn == [2]byte{0x0f, 0x05} {
			return g, nil
		}
		delete(te.t.gadgets, tgid)
		delete(te.t.parking, tgid)
	}
	if g, err := installParking(tgid); err == nil {
		te.t.gadgets[tgid] = g
		te.t.parking[tgid] = g
		return g, nil
	}
	start, end, err := vdsoRange(tgid)
	if err != nil {
		return 0, err
	}
	code := make([]byte, end-start)
	if err := ReadMem(tgid, start, code); err != nil {
		return 0, fmt.Errorf("read vDSO: %w", err)
	}
	i := bytes.Index(code, syscallInsn)
	if i < 0 {
		return 0, fmt.Errorf("no syscall instruction in the vDSO at %#x-%#x", start, end)
	}
	te.t.gadgets[tgid] = start + uint64(i)
	return start + uint64(i), nil
}

// ForgetProcess drops cached per-process state; call it when a thread group
// is gone or its vDSO moved.
func (t *Tracer) ForgetProcess(tgid int) {
	t.Do(func() error { delete(t.gadgets, tgid); delete(t.parking, tgid); return nil })
}

// ParkingCode returns where the parking code of the thread's process is
// (see parkingCode), installing it if need be; ok is false when injected
// syscalls run elsewhere (the vDSO had no room for it, or UseSyscallAt).
func (te *Tracee) ParkingCode() (addr uint64, ok bool, err error) {
	err = te.do("parking code", func() error {
		g, err := te.syscallGadget()
		if err != nil {
			return err
		}
		addr, ok = g, te.gadget == 0 && te.t.parking[te.Tgid] == g
		return nil
	})
	return addr, ok, err
}

// ParkedAfterExit says whether a thread stopped at rip, in the parking code
// at park, is past the close of ParkingExit's way out: back in the pause
// loop, or right after the close.
func ParkedAfterExit(park, rip uint64) bool {
	return rip >= park+2 && rip < park+ParkingExit || rip == park+ParkingExit+12
}

// ParkingExitFd returns the fd the parking code's way out closes, from the
// registers of a thread stopped there (r12).
func ParkingExitFd(r *Regs) uint64 { return r.R12 }

// UseSyscallAt makes injected syscalls run the syscall instruction at addr
// in this thread's address space instead of one found in its vDSO (a
// restore stub has its own; 0 goes back to the vDSO).
func (te *Tracee) UseSyscallAt(addr uint64) { te.gadget = addr }

func vdsoRange(pid int) (uint64, uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasSuffix(line, "[vdso]") {
			continue
		}
		rng, _, _ := strings.Cut(line, " ")
		lo, hi, _ := strings.Cut(rng, "-")
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || e <= s {
			return 0, 0, fmt.Errorf("bad [vdso] line in /proc/%d/maps: %q", pid, line)
		}
		return s, e, nil
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	return 0, 0, fmt.Errorf("task %d has no [vdso] mapping (booted with vdso=0?): injected syscalls need one", pid)
}

// tgidOf returns the thread group of tid, or tid itself if /proc says nothing.
func tgidOf(tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return tid
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return tid
}

// RerunsAfterRestartBlock tells a syscall (by number) that a restored task
// re-runs from its start where the kernel would have continued it with
// restart_syscall(2), whose restart block the restored task does not
// have: poll, nanosleep, clock_nanosleep and futex, whose arguments are
// still in the registers. A timeout starts again whole, which a caller
// must accept of a poll or a sleep that a signal's handler restarted
// (rather than an EINTR it never saw before). Others return EINTR.
func RerunsAfterRestartBlock(nr uint64) bool {
	switch nr {
	case unix.SYS_POLL, unix.SYS_NANOSLEEP, unix.SYS_CLOCK_NANOSLEEP, unix.SYS_FUTEX:
		return true
	}
	return false
}

// wchans are the wait channels of threads noted before they were frozen
// (NoteSleeping): a thread stopped by ptrace waits in the ptrace stop.
var wchans sync.Map

// NoteSleeping notes the wait channel of every thread of task pid sleeping
// in restart_syscall, before the tree is frozen, for SleepingSyscall.
func NoteSleeping(pid int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		sc, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, e.Name()))
		if err != nil || !bytes.HasPrefix(sc, []byte(strconv.Itoa(unix.SYS_RESTART_SYSCALL)+" ")) {
			continue
		}
		if w, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/wchan", pid, e.Name())); err == nil {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				wchans.Store(tid, string(w))
			}
		}
	}
}

// SleepingSyscall is the syscall a thread continued with restart_syscall
// sleeps in, from its wchan (the kernel function it waits in), whose
// arguments are still in its registers; ^0 when it cannot be told.
func SleepingSyscall(pid, tid int, r *Regs) uint64 {
	var w string
	if v, ok := wchans.Load(tid); ok {
		w = v.(string)
	} else if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/wchan", pid, tid)); err == nil {
		w = string(b)
	}
	switch {
	case strings.Contains(w, "poll"):
		return unix.SYS_POLL
	case strings.Contains(w, "futex"):
		return unix.SYS_FUTEX
	case strings.Contains(w, "nanosleep"):
		// clock_nanosleep(clockid, flags, req, rem) has a small clock
		// id and flags where nanosleep(req, rem) has a pointer.
		if r.Rdi < 16 && r.Rsi <= 1 {
			return unix.SYS_CLOCK_NANOSLEEP
		}
		return unix.SYS_NANOSLEEP
	}
	return ^uint64(0)
}

// parkedState is a parked thread's own registers and signal mask.
type parkedState struct {
	regs Regs
	mask uint64
}

// Park readies the stopped thread for a moment during which gockpt must
// not die with the thread free to run its own code (a socket of its
// process in TCP repair mode would fail its reads and writes): without
// resuming it, the thread is set to pause in its process's parking code
// with every signal blocked. Should gockpt die before Unpark, the kernel
// lets the thread go into that pause, where the parasite watchdog finds
// it, does what must come first, and puts back its state. ok is false
// where the process has no parking code (nothing was changed).
func (te *Tracee) Park() (ok bool, err error) {
	err = te.do("park", func() error {
		if te.parked != nil {
			ok = true
			return nil
		}
		g, err := te.syscallGadget()
		if err != nil {
			return err
		}
		if te.gadget != 0 || te.t.parking[te.Tgid] != g {
			return nil
		}
		var orig Regs
		if err := unix.PtraceGetRegs(te.Tid, &orig); err != nil {
			return err
		}
		mask, err := getSigmask(te.Tid)
		if err != nil {
			return err
		}
		if err := setSigmask(te.Tid, allSignals); err != nil {
			return err
		}
		r := orig
		r.Rip = g + 2 // the pause loop
		ClearSyscall(&r)
		if err := unix.PtraceSetRegs(te.Tid, &r); err != nil {
			setSigmask(te.Tid, mask)
			return err
		}
		te.parked = &parkedState{orig, mask}
		ok = true
		return nil
	})
	return ok, err
}

// Unpark puts back the registers and signal mask Park saved; a thread not
// parked is left alone.
func (te *Tracee) Unpark() error {
	return te.do("unpark", func() error {
		p := te.parked
		if p == nil {
			return nil
		}
		if err := unix.PtraceSetRegs(te.Tid, &p.regs); err != nil {
			return fmt.Errorf("restore registers: %w", err)
		}
		if err := setSigmask(te.Tid, p.mask); err != nil {
			return fmt.Errorf("restore sigmask: %w", err)
		}
		te.parked = nil
		return nil
	})
}
