package ptrace

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

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
	if len(args) > 6 {
		return 0, fmt.Errorf("task %d: syscall %d: %d arguments, at most 6", te.Tid, nr, len(args))
	}
	var ret uint64
	err := te.do(fmt.Sprintf("injected syscall %d", nr), func() error {
		gadget, err := te.syscallGadget()
		if err != nil {
			return err
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
		r.Rax = nr
		r.Orig_rax = ^uint64(0)
		r.Rip = gadget
		var a [6]uint64
		copy(a[:], args)
		r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9 = a[0], a[1], a[2], a[3], a[4], a[5]
		ret, err = te.runSyscall(&r, nr)
		// Put everything back even when the syscall failed to run.
		if e := unix.PtraceSetRegs(te.Tid, &orig); e != nil && err == nil {
			err = fmt.Errorf("restore registers: %w", e)
		}
		if e := setSigmask(te.Tid, mask); e != nil && err == nil {
			err = fmt.Errorf("restore sigmask: %w", e)
		}
		return err
	})
	return ret, err
}

// runSyscall sets r, resumes to syscall entry and then exit, and returns rax.
// Runs on the tracer thread.
func (te *Tracee) runSyscall(r *Regs, nr uint64) (uint64, error) {
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
			return 0, fmt.Errorf("task exited while running injected syscall %d (%v)", nr, ws)
		case !ws.Stopped():
			continue
		case ws.StopSignal() == unix.SIGTRAP|0x80:
			stage++
		case ws.TrapCause() == unix.PTRACE_EVENT_STOP:
			// Group-stop or a new interrupt: resume into the syscall again.
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

// gadgets caches, per thread group, the address of a syscall instruction.
var gadgets = map[int]uint64{}

// syscallGadget finds a syscall instruction in the task's vDSO. Runs on the
// tracer thread, which also serialises the cache.
func (te *Tracee) syscallGadget() (uint64, error) {
	tgid := te.Tgid
	if g, ok := gadgets[tgid]; ok {
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
	gadgets[tgid] = start + uint64(i)
	return start + uint64(i), nil
}

// ForgetProcess drops cached per-process state; call it when a thread group
// is gone or its vDSO moved.
func (t *Tracer) ForgetProcess(tgid int) {
	t.Do(func() error { delete(gadgets, tgid); return nil })
}

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
