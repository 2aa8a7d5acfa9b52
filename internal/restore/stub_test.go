package restore

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/pidctl"
	"github.com/gockpt/gockpt/internal/ptrace"
)

func TestChooseBase(t *testing.T) {
	const k64 = 64 << 10
	for _, c := range []struct {
		vmas [][2]uint64
		size uint64
		want uint64
	}{
		{nil, 0, 0x10000},
		{[][2]uint64{{0x400000, 0x500000}}, k64, 0x10000},
		{[][2]uint64{{0x10000, 0x11000}}, k64, 0x11000},
		{[][2]uint64{{0x20000, 0x21000}, {0x8000, 0x12000}}, k64, 0x21000},
		{[][2]uint64{{0x1000, 0x2000}, {0x30000, 0x40000}}, k64, 0x10000},
		{[][2]uint64{{0x1000, 0x2000}, {0x30000, 0x40000}}, 0x30000, 0x40000},
		{[][2]uint64{{0x10000, 0x7fff_ffff_f000}}, k64, 0},
		{[][2]uint64{{0x20000, 0x30000}, {0x10000, 0x20001}}, k64, 0x30000},
		// Too small sizes still get StubSize.
		{[][2]uint64{{0x18000, 0x19000}}, 1, 0x19000},
	} {
		if got := ChooseBase(c.vmas, c.size); got != c.want {
			t.Errorf("ChooseBase(%#x, %#x) = %#x, want %#x", c.vmas, c.size, got, c.want)
		}
	}
}

func TestStubELF(t *testing.T) {
	const base = 0x5550000
	exe := stubELF(base)
	f, err := elf.NewFile(bytes.NewReader(exe))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != elf.ET_EXEC || f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		t.Errorf("type %v machine %v class %v", f.Type, f.Machine, f.Class)
	}
	var loads []*elf.Prog
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			loads = append(loads, p)
		case elf.PT_GNU_STACK:
			if p.Flags&elf.PF_X != 0 {
				t.Errorf("executable stack: %v", p.Flags)
			}
		case elf.PT_INTERP:
			t.Errorf("has an interpreter")
		}
	}
	if len(loads) != 1 {
		t.Fatalf("%d PT_LOAD segments, want 1", len(loads))
	}
	p := loads[0]
	if p.Vaddr != base || p.Off != 0 || p.Flags != elf.PF_R|elf.PF_X || p.Filesz != uint64(len(exe)) || p.Memsz != p.Filesz {
		t.Errorf("PT_LOAD %+v", p.ProgHeader)
	}
	if f.Entry != base+stubCodeOff || !stubCodeAt(exe, f.Entry-base) {
		t.Errorf("entry %#x does not hold the stub code", f.Entry)
	}
	if g := base + stubCodeOff + stubGadgetOff - base; !bytes.Equal(exe[g:g+3], []byte{0x0f, 0x05, 0xcc}) {
		t.Errorf("gadget bytes % x, want syscall; int3", exe[g:g+3])
	}
	if uint64(len(exe)) > stubCodeSize {
		t.Errorf("stub is %d bytes, more than its %d-byte code page", len(exe), stubCodeSize)
	}
}

// startStub starts a stub at a base free in this process too (the stub is
// not this process, but it is a realistic choice), and kills it at cleanup.
func startStub(t *testing.T) (*ptrace.Tracer, *Stub) {
	t.Helper()
	tr := ptrace.NewTracer()
	t.Cleanup(tr.Close)
	base := ChooseBase(mapsOf(t, os.Getpid()), StubSize)
	s, err := StartStub(tr, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Kill(); err != nil {
			t.Errorf("kill stub: %v", err)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.Pid)); err == nil {
			t.Errorf("stub %d still exists after Kill", s.Pid)
		}
	})
	return tr, s
}

type mapping struct {
	lo, hi uint64
	perms  string
	name   string
}

func mappingsOf(t *testing.T, pid int) []mapping {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		var m mapping
		fmt.Sscanf(fs[0], "%x-%x", &m.lo, &m.hi)
		m.perms = fs[1]
		if len(fs) > 5 {
			m.name = strings.Join(fs[5:], " ")
		}
		out = append(out, m)
	}
	return out
}

func mapsOf(t *testing.T, pid int) [][2]uint64 {
	var out [][2]uint64
	for _, m := range mappingsOf(t, pid) {
		out = append(out, [2]uint64{m.lo, m.hi})
	}
	return out
}

func TestStartStub(t *testing.T) {
	_, s := startStub(t)
	ms := mappingsOf(t, s.Pid)
	if len(ms) == 0 || ms[0].lo != s.Base || ms[0].hi != s.Base+stubCodeSize || ms[0].perms != "r-xp" || !strings.Contains(ms[0].name, "memfd:"+StubName) {
		t.Errorf("first mapping %+v, want r-xp memfd:%s at %#x", ms[0], StubName, s.Base)
	}
	for _, m := range ms[1:] {
		if m.name != "[stack]" && m.name != "[vdso]" && m.name != "[vvar]" && m.name != "[vvar_vclock]" && m.name != "[vsyscall]" {
			t.Errorf("unexpected mapping %+v", m)
		}
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.Pid)); strings.TrimSpace(string(comm)) != StubName {
		t.Errorf("comm %q, want %s", comm, StubName)
	}
	if st := procStatus(t, s.Pid); st["PPid"] != strconv.Itoa(os.Getpid()) || !strings.HasPrefix(st["State"], "t") {
		t.Errorf("PPid %s State %s: want our child in a tracing stop", st["PPid"], st["State"])
	}
	// Only stdio, all /dev/null: the memfd did not leak into it.
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(fds) != 3 {
		t.Errorf("stub has %d fds, want 3", len(fds))
	}
	for _, fd := range fds {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.Pid, fd.Name())); l != "/dev/null" {
			t.Errorf("stub fd %s -> %s, want /dev/null", fd.Name(), l)
		}
	}
	if env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.Pid)); len(env) != 0 {
		t.Errorf("stub environment %q, want empty", env)
	}
	if got, err := s.Task.Syscall(unix.SYS_GETPID); err != nil || int(got) != s.Pid {
		t.Errorf("getpid in stub = %d, %v", int64(got), err)
	}
	regs, err := s.Tracee.GetRegs()
	if err != nil || regs.Rip != s.Base+stubCodeOff+stubParkedOff {
		t.Errorf("stub rip %#x (%v), want its parking loop", regs.Rip, err)
	}
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// The stub needs nothing the kernel gave it besides its own code page:
// with its stack and vDSO gone it still runs syscalls and makes clones.
func TestStubNeedsNoStack(t *testing.T) {
	_, s := startStub(t)
	for _, m := range mappingsOf(t, s.Pid) {
		if m.lo == s.Base || m.name == "[vsyscall]" {
			continue
		}
		r, err := s.Task.Syscall(unix.SYS_MUNMAP, m.lo, m.hi-m.lo)
		if err != nil || r != 0 {
			t.Fatalf("munmap %s at %#x: %d, %v", m.name, m.lo, int64(r), err)
		}
	}
	for _, m := range mappingsOf(t, s.Pid) {
		if m.lo != s.Base && m.name != "[vsyscall]" {
			t.Fatalf("stub mapping %+v left after munmap", m)
		}
	}
	if got, err := s.Task.Syscall(unix.SYS_GETPID); err != nil || int(got) != s.Pid {
		t.Fatalf("getpid in stub without stack = %d, %v", int64(got), err)
	}
	scratch, err := s.MapScratch()
	if err != nil {
		t.Fatal(err)
	}
	child := cloneFree(t, s, pidctl.Request{Flags: unix.CLONE_PARENT, Scratch: scratch})
	if got, err := child.Syscall(unix.SYS_GETPID); err != nil || int(got) != child.Tid {
		t.Errorf("getpid in clone of stackless stub = %d, %v", int64(got), err)
	}
	// Stopped and still alive after all this.
	if st := procStatus(t, s.Pid); !strings.HasPrefix(st["State"], "t") {
		t.Errorf("stub state %s", st["State"])
	}
}

func needSetTID(t *testing.T) {
	t.Helper()
	if err := pidctl.SetTIDSupported(); err != nil {
		t.Skip(err)
	}
}

func freePID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for range 1000 {
		p := max/2 + rand.IntN(max/2-1)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p)); err != nil {
			return p
		}
	}
	t.Fatal("no free PID")
	return 0
}

// cloneFree clones the stub into a PID free right now, trying another when
// some other process takes it first. Cleanup kills and reaps processes;
// threads go with the stub.
func cloneFree(t *testing.T, s *Stub, req pidctl.Request) *pidctl.Task {
	t.Helper()
	if req.LockFile == "" {
		req.LockFile = filepath.Join(t.TempDir(), "ns_last_pid.lock")
	}
	for range 5 {
		req.PID = freePID(t)
		child, err := pidctl.Clone(s.Task, req)
		if errors.Is(err, pidctl.ErrPIDTaken) || errors.Is(err, pidctl.ErrRaced) {
			t.Logf("PID %d: %v; trying another", req.PID, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if child.Tid != req.PID {
			t.Fatalf("clone got TID %d, want %d", child.Tid, req.PID)
		}
		if req.Flags&unix.CLONE_THREAD == 0 {
			ppid, _ := strconv.Atoi(procStatus(t, child.Tid)["PPid"])
			t.Cleanup(func() {
				if err := child.Kill(); err != nil {
					t.Errorf("kill clone: %v", err)
				}
				if ppid == s.Pid {
					if err := s.Task.ReapChild(child.Tid); err != nil {
						t.Errorf("reap clone: %v", err)
					}
				}
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", child.Tid)); err == nil {
					t.Errorf("clone %d still exists after kill and reap", child.Tid)
				}
			})
		}
		return child
	}
	t.Fatal("every PID tried was taken by someone else")
	return nil
}

func TestStubClone(t *testing.T) {
	for _, m := range []pidctl.Method{pidctl.SetTID, pidctl.NsLastPid} {
		for _, c := range []struct {
			name  string
			flags uint64
		}{{"root", unix.CLONE_PARENT}, {"child", 0}, {"thread", pidctl.ThreadFlags}} {
			t.Run(m.String()+"/"+c.name, func(t *testing.T) {
				if m == pidctl.SetTID {
					needSetTID(t)
				}
				_, s := startStub(t)
				scratch, err := s.MapScratch()
				if err != nil {
					t.Fatal(err)
				}
				req := pidctl.Request{Flags: c.flags, Scratch: scratch, Method: m}
				if c.flags&unix.CLONE_THREAD == 0 {
					req.ExitSignal = uint64(unix.SIGCHLD)
				}
				child := cloneFree(t, s, req)
				if child.SyscallAddr != s.SyscallAddr {
					t.Errorf("clone's syscall address %#x, want the stub's %#x", child.SyscallAddr, s.SyscallAddr)
				}
				regs, err := child.GetRegs()
				if err != nil || regs.Rip != s.SyscallAddr+2 || regs.Rax != 0 {
					t.Errorf("clone starts at rip %#x rax %#x (%v), want %#x and 0", regs.Rip, regs.Rax, err, s.SyscallAddr+2)
				}
				st := procStatus(t, child.Tid)
				switch c.name {
				case "root":
					if st["PPid"] != strconv.Itoa(os.Getpid()) {
						t.Errorf("root clone's PPid %s, want us (%d)", st["PPid"], os.Getpid())
					}
				case "child":
					if st["PPid"] != strconv.Itoa(s.Pid) {
						t.Errorf("child clone's PPid %s, want the stub (%d)", st["PPid"], s.Pid)
					}
				case "thread":
					if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", s.Pid, child.Tid)); err != nil {
						t.Errorf("thread not in /proc/%d/task: %v", s.Pid, err)
					}
					if got, err := child.Syscall(unix.SYS_GETTID); err != nil || int(got) != child.Tid {
						t.Errorf("gettid in thread = %d, %v", int64(got), err)
					}
				}
				want := child.Tid
				if c.name == "thread" {
					want = s.Pid
				}
				if got, err := child.Syscall(unix.SYS_GETPID); err != nil || int(got) != want {
					t.Errorf("getpid in clone = %d, %v; want %d", int64(got), err, want)
				}
				if c.name != "thread" {
					// The clone has the stub's code: it is a stub too.
					if ms := mappingsOf(t, child.Tid); ms[0].lo != s.Base {
						t.Errorf("clone's first mapping at %#x, want %#x", ms[0].lo, s.Base)
					}
				}
			})
		}
	}
}

func TestStubPIDTaken(t *testing.T) {
	_, s := startStub(t)
	scratch, err := s.MapScratch()
	if err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	cases := map[int]string{
		s.Pid:       fmt.Sprintf("PID %d is taken by another process (%s, PPID %d): stop it or restore in a new PID namespace", s.Pid, StubName, os.Getpid()),
		os.Getpid(): fmt.Sprintf("PID %d is taken by another process (%s, PPID %d): stop it or restore in a new PID namespace", os.Getpid(), strings.TrimSpace(string(comm)), os.Getppid()),
	}
	for _, m := range []pidctl.Method{pidctl.SetTID, pidctl.NsLastPid} {
		for pid, want := range cases {
			if m == pidctl.SetTID && pidctl.SetTIDSupported() != nil {
				continue
			}
			child, err := pidctl.Clone(s.Task, pidctl.Request{PID: pid, Flags: unix.CLONE_PARENT, Scratch: scratch, Method: m, LockFile: filepath.Join(t.TempDir(), "l")})
			if err == nil {
				child.Kill()
				t.Fatalf("%v: clone into PID %d succeeded", m, pid)
			}
			if !errors.Is(err, pidctl.ErrPIDTaken) || err.Error() != want {
				t.Errorf("%v:\ngot  %q\nwant %q", m, err, want)
			}
		}
	}
}

// The stub dies with its tracer's thread (Pdeathsig), and Kill still reaps it.
func TestStubDiesWithTracer(t *testing.T) {
	tr, s := startStub(t)
	tr.Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st := procStatus(t, s.Pid); strings.HasPrefix(st["State"], "Z") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stub %d alive 5s after its tracer closed", s.Pid)
		}
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
}

// stubCodeAt reports whether the stub code sits at off in exe.
func stubCodeAt(exe []byte, off uint64) bool {
	return off+uint64(len(stubCode)) <= uint64(len(exe)) && bytes.Equal(exe[off:off+uint64(len(stubCode))], stubCode)
}
