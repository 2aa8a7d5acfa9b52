package pidctl

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// startParent starts sleep, seizes it, and returns it as a Task driven
// through a syscall instruction of its vDSO, with a scratch page mapped in
// it. Cleanup kills and reaps it (and any thread Clone gave it).
func startParent(t *testing.T, tr *ptrace.Tracer) (*Task, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var task *Task
	t.Cleanup(func() {
		if task != nil {
			if err := task.Kill(); err != nil {
				t.Errorf("kill parent: %v", err)
			}
			cmd.Process.Release()
			return
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitSyscall(t, pid, unix.SYS_CLOCK_NANOSLEEP)
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	task = FromTracee(te, vdsoSyscall(t, pid))
	scratch, err := task.Syscall(unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil || ptrace.Errno(scratch) != 0 {
		t.Fatalf("mmap scratch in %d: %#x, %v", pid, scratch, err)
	}
	return task, scratch
}

// waitSyscall waits until pid blocks in syscall nr.
func waitSyscall(t *testing.T, pid int, nr int) {
	t.Helper()
	want := strconv.Itoa(nr) + " "
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if strings.HasPrefix(string(b), want) {
			return
		}
	}
	t.Fatalf("process %d never blocked in syscall %d", pid, nr)
}

func vdsoSyscall(t *testing.T, pid int) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !strings.HasSuffix(sc.Text(), "[vdso]") {
			continue
		}
		var lo, hi uint64
		fmt.Sscanf(sc.Text(), "%x-%x", &lo, &hi)
		code := make([]byte, hi-lo)
		if err := ptrace.ReadMem(pid, lo, code); err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(code, []byte{0x0f, 0x05}); i >= 0 {
			return lo + uint64(i)
		}
	}
	t.Fatalf("no syscall instruction in the vDSO of %d", pid)
	return 0
}

// freePID picks a PID nobody holds right now; it may be gone by the time we
// use it, which callers treat as a reason to try another.
func freePID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	max, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for range 1000 {
		p := max/2 + rand.IntN(max/2-1)
		if !pidExists(p) && !pidExists(p-1) {
			return p
		}
	}
	t.Fatal("no free PID found")
	return 0
}

func needSetTID(t *testing.T) {
	t.Helper()
	if err := SetTIDSupported(); err != nil {
		var u unix.Utsname
		unix.Uname(&u)
		var maj, min int
		fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min)
		if maj > 5 || maj == 5 && min >= 5 {
			t.Fatalf("kernel %d.%d should have set_tid: %v", maj, min, err)
		}
		t.Skip(err)
	}
}

// cloneFree clones into a free PID, trying other PIDs when another process
// takes ours first (the PID namespace is shared with the rest of the
// machine). Cleanup kills the child and reaps it.
func cloneFree(t *testing.T, parent *Task, req Request) *Task {
	t.Helper()
	for range 5 {
		req.PID = freePID(t)
		child, err := Clone(parent, req)
		if errors.Is(err, ErrPIDTaken) || errors.Is(err, ErrRaced) {
			t.Logf("PID %d: %v; trying another", req.PID, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if child.Tid != req.PID {
			t.Errorf("child TID %d, want %d", child.Tid, req.PID)
		}
		if req.Flags&unix.CLONE_THREAD == 0 {
			ppid := ppidOf(t, child.Tid)
			t.Cleanup(func() {
				if err := child.Kill(); err != nil {
					t.Errorf("kill child: %v", err)
				}
				if ppid == parent.Tgid {
					if err := parent.ReapChild(child.Tid); err != nil {
						t.Errorf("reap child: %v", err)
					}
				}
				if pidExists(child.Tid) {
					t.Errorf("child %d still exists after kill and reap", child.Tid)
				}
			})
		}
		return child
	}
	t.Fatal("every PID tried was taken by someone else")
	return nil
}

func ppidOf(t *testing.T, pid int) int {
	t.Helper()
	st, err := readStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(st["PPid"])
	return n
}

func stateOf(t *testing.T, pid int) string {
	t.Helper()
	st, err := readStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st["State"]
}

func TestCloneProcess(t *testing.T) {
	for _, m := range []Method{SetTID, NsLastPid} {
		for _, parentFlag := range []uint64{0, unix.CLONE_PARENT} {
			t.Run(fmt.Sprintf("%v/CLONE_PARENT=%v", m, parentFlag != 0), func(t *testing.T) {
				if m == SetTID {
					needSetTID(t)
				}
				tr := ptrace.NewTracer()
				t.Cleanup(tr.Close)
				parent, scratch := startParent(t, tr)
				mask, err := parent.GetSigmask()
				if err != nil {
					t.Fatal(err)
				}
				before, err := parent.GetRegs()
				if err != nil {
					t.Fatal(err)
				}
				lock := filepath.Join(t.TempDir(), "lockdir", "ns_last_pid.lock")
				child := cloneFree(t, parent, Request{Flags: parentFlag, ExitSignal: uint64(unix.SIGCHLD), Scratch: scratch, Method: m, LockFile: lock})

				wantPPid := parent.Tgid
				if parentFlag != 0 {
					wantPPid = os.Getpid()
				}
				if got := ppidOf(t, child.Tid); got != wantPPid {
					t.Errorf("child %d has PPID %d, want %d", child.Tid, got, wantPPid)
				}
				if child.Tgid != child.Tid {
					t.Errorf("child Tgid %d, want %d", child.Tgid, child.Tid)
				}
				// Not run yet: in a tracing stop, at the exit of clone3.
				if s := stateOf(t, child.Tid); !strings.HasPrefix(s, "t") {
					t.Errorf("child state %q, want t (tracing stop)", s)
				}
				regs, err := child.GetRegs()
				if err != nil {
					t.Fatal(err)
				}
				if regs.Rax != 0 || regs.Rip != parent.SyscallAddr+2 {
					t.Errorf("child rax %#x rip %#x, want 0 and %#x", regs.Rax, regs.Rip, parent.SyscallAddr+2)
				}
				if m, err := child.GetSigmask(); err != nil || m != mask {
					t.Errorf("child sigmask %#x (%v), want the parent's %#x", m, err, mask)
				}
				after, err := parent.GetRegs()
				if err != nil || after != before {
					t.Errorf("parent registers changed by Clone (%v):\n%+v\n%+v", err, before, after)
				}
				if got, err := child.Syscall(unix.SYS_GETPID); err != nil || int(got) != child.Tid {
					t.Errorf("getpid in child = %d, %v; want %d", int64(got), err, child.Tid)
				}
				if got, err := parent.Syscall(unix.SYS_GETPID); err != nil || int(got) != parent.Tgid {
					t.Errorf("getpid in parent = %d, %v; want %d", int64(got), err, parent.Tgid)
				}
				if m == NsLastPid {
					checkLockFile(t, lock)
				}
			})
		}
	}
}

// checkLockFile checks the lock's permissions and that it is free again.
func checkLockFile(t *testing.T, path string) {
	t.Helper()
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("lock directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("ns_last_pid lock still held after Clone: %v", err)
	}
}

func TestCloneThread(t *testing.T) {
	for _, m := range []Method{SetTID, NsLastPid} {
		t.Run(m.String(), func(t *testing.T) {
			if m == SetTID {
				needSetTID(t)
			}
			tr := ptrace.NewTracer()
			t.Cleanup(tr.Close)
			parent, scratch := startParent(t, tr)
			child := cloneFree(t, parent, Request{Flags: ThreadFlags, Scratch: scratch, Method: m, LockFile: filepath.Join(t.TempDir(), "l")})
			if child.Tgid != parent.Tgid {
				t.Errorf("thread Tgid %d, want %d", child.Tgid, parent.Tgid)
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", parent.Tgid, child.Tid)); err != nil {
				t.Errorf("new thread not in /proc/%d/task: %v", parent.Tgid, err)
			}
			if got, err := child.Syscall(unix.SYS_GETTID); err != nil || int(got) != child.Tid {
				t.Errorf("gettid in thread = %d, %v; want %d", int64(got), err, child.Tid)
			}
			if got, err := child.Syscall(unix.SYS_GETPID); err != nil || int(got) != parent.Tgid {
				t.Errorf("getpid in thread = %d, %v; want %d", int64(got), err, parent.Tgid)
			}
		})
	}
}

func TestClonePIDTaken(t *testing.T) {
	tr := ptrace.NewTracer()
	t.Cleanup(tr.Close)
	parent, scratch := startParent(t, tr)
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		pid  int
		want string
	}{
		{parent.Tgid, fmt.Sprintf("PID %d is taken by another process (sleep, PPID %d): stop it or restore in a new PID namespace", parent.Tgid, os.Getpid())},
		{os.Getpid(), fmt.Sprintf("PID %d is taken by another process (%s, PPID %d): stop it or restore in a new PID namespace", os.Getpid(), strings.TrimSpace(string(comm)), os.Getppid())},
	}
	for _, m := range []Method{SetTID, NsLastPid} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%v/%d", m, c.pid), func(t *testing.T) {
				if m == SetTID {
					needSetTID(t)
				}
				child, err := Clone(parent, Request{PID: c.pid, ExitSignal: uint64(unix.SIGCHLD), Scratch: scratch, Method: m, LockFile: filepath.Join(t.TempDir(), "l")})
				if err == nil {
					child.Kill()
					parent.ReapChild(child.Tid)
					t.Fatalf("clone into PID %d succeeded as %d", c.pid, child.Tid)
				}
				if !errors.Is(err, ErrPIDTaken) || err.Error() != c.want {
					t.Errorf("got  %q\nwant %q", err, c.want)
				}
			})
		}
	}
	// The parent has no child left behind by the failed attempts.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent.Tgid, parent.Tgid)); err != nil || len(strings.TrimSpace(string(b))) != 0 {
		t.Errorf("parent's children after failed clones: %q, %v", b, err)
	}
}

func TestNsLastPidWaitsForLock(t *testing.T) {
	tr := ptrace.NewTracer()
	t.Cleanup(tr.Close)
	parent, scratch := startParent(t, tr)
	lock := filepath.Join(t.TempDir(), "l")
	for range 5 {
		unlock, err := lockNsLastPid(lock)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			child *Task
			err   error
		}
		done := make(chan result, 1)
		pid := freePID(t)
		go func() {
			child, err := Clone(parent, Request{PID: pid, ExitSignal: uint64(unix.SIGCHLD), Scratch: scratch, Method: NsLastPid, LockFile: lock})
			done <- result{child, err}
		}()
		select {
		case r := <-done:
			unlock()
			if r.child != nil {
				r.child.Kill()
				parent.ReapChild(r.child.Tid)
			}
			t.Fatalf("Clone finished while another holder had the lock: %v", r.err)
		case <-time.After(200 * time.Millisecond):
		}
		unlock()
		r := <-done
		if r.child != nil {
			t.Cleanup(func() {
				if err := r.child.Kill(); err != nil {
					t.Error(err)
				}
				if err := parent.ReapChild(r.child.Tid); err != nil {
					t.Error(err)
				}
			})
		}
		if errors.Is(r.err, ErrPIDTaken) || errors.Is(r.err, ErrRaced) {
			t.Logf("PID %d lost to another process: %v; trying another", pid, r.err)
			continue
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		return
	}
	t.Fatal("every PID tried was taken by someone else")
}

func TestRequestCheck(t *testing.T) {
	tr := ptrace.NewTracer()
	t.Cleanup(tr.Close)
	parent := NewTask(tr, 1, 1, 0) // never reached: requests fail first
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{PID: 0, Scratch: 1}, "task 1: clone PID 0: invalid PID 0"},
		{Request{PID: 5, Flags: unix.CLONE_VFORK, Scratch: 1}, "task 1: clone PID 5: clone flags 0x4000 include unsupported 0x4000"},
		{Request{PID: 5, Flags: ThreadFlags, ExitSignal: 17, Scratch: 1}, "task 1: clone PID 5: a thread has no exit signal (got 17)"},
		{Request{PID: 5}, "task 1: clone PID 5: no scratch address for clone3's arguments"},
	} {
		if _, err := Clone(parent, c.req); err == nil || err.Error() != c.want {
			t.Errorf("Clone(%+v) = %v, want %q", c.req, err, c.want)
		}
	}
}

func TestCloneArgs(t *testing.T) {
	b, size := cloneArgs(Request{PID: 1234, Flags: unix.CLONE_NEWNS, ExitSignal: 17, Scratch: 0x10000}, true)
	if size != 80 || len(b) != 84 {
		t.Fatalf("size %d, %d bytes; want 80 and 84", size, len(b))
	}
	u64 := func(i int) uint64 { return binary.LittleEndian.Uint64(b[i*8:]) }
	if u64(0) != unix.CLONE_NEWNS || u64(4) != 17 || u64(8) != 0x10000+80 || u64(9) != 1 {
		t.Errorf("clone_args %x", b)
	}
	if pid := binary.LittleEndian.Uint32(b[80:]); pid != 1234 {
		t.Errorf("set_tid[0] = %d", pid)
	}
	b, size = cloneArgs(Request{PID: 1234, Flags: unix.CLONE_PARENT, ExitSignal: 17, Scratch: 0x10000}, false)
	if size != 64 || u64(0) != unix.CLONE_PARENT || u64(4) != 0 || u64(8) != 0 || u64(9) != 0 {
		t.Errorf("CLONE_PARENT without set_tid: size %d, args %x", size, b)
	}
}

// Losing the ns_last_pid race: the wrong child is thrown away (killed and
// reaped, or ended as a thread) and the next attempt succeeds; losing every
// time ends in ErrRaced. The race is simulated by writing a wrong value.
func TestNsLastPidRace(t *testing.T) {
	for _, flags := range []uint64{0, unix.CLONE_PARENT, ThreadFlags} {
		t.Run(fmt.Sprintf("flags=%#x", flags), func(t *testing.T) {
			tr := ptrace.NewTracer()
			t.Cleanup(tr.Close)
			parent, scratch := startParent(t, tr)
			exit := uint64(unix.SIGCHLD)
			if flags&unix.CLONE_THREAD != 0 {
				exit = 0
			}
			req := Request{Flags: flags, ExitSignal: exit, Scratch: scratch, Method: NsLastPid, LockFile: filepath.Join(t.TempDir(), "l")}
			var wrong []int
			lose := func(n int) func(int) error {
				return func(v int) error {
					if len(wrong) < n {
						// Never the PID asked for: landing on it would
						// win the race this simulates losing.
						p := freePID(t)
						for p == req.PID {
							p = freePID(t)
						}
						wrong = append(wrong, p)
						v = p - 1
					}
					return writeNsLastPid(v)
				}
			}
			t.Cleanup(func() { nsLastPidWriter = writeNsLastPid })

			nsLastPidWriter = lose(2)
			child := cloneFree(t, parent, req)
			if len(wrong) < 2 {
				t.Fatalf("simulated %d lost races, want 2", len(wrong))
			}
			for _, p := range wrong[:2] {
				if ours(p, parent.Tgid) && p != child.Tid {
					t.Errorf("thrown-away task %d still exists", p)
				}
			}
			nsLastPidWriter = writeNsLastPid
			kids := childrenOf(parent.Tgid)
			if flags&(unix.CLONE_PARENT|unix.CLONE_THREAD) != 0 && len(kids) != 0 {
				t.Errorf("parent has children %v", kids)
			}
			if flags == 0 && (len(kids) != 1 || kids[0] != child.Tid) {
				t.Errorf("parent has children %v, want just %d", kids, child.Tid)
			}

			wrong = nil
			nsLastPidWriter = lose(nsLastPidAttempts)
			req.PID = freePID(t)
			c, err := Clone(parent, req)
			if err == nil {
				c.Kill()
				t.Fatal("Clone succeeded though every attempt lost the race")
			}
			want := fmt.Sprintf("task %d: clone PID %d via /proc/sys/kernel/ns_last_pid: raced by other processes creating tasks %d times; retry, or use a kernel with clone3 set_tid (5.5+)", parent.Tid, req.PID, nsLastPidAttempts)
			if !errors.Is(err, ErrRaced) || err.Error() != want {
				t.Errorf("got  %q\nwant %q", err, want)
			}
			for _, p := range wrong {
				// Reaping by a parent is asynchronous to us: allow a moment.
				// The PID namespace is shared: another process may have
				// taken the PID since; only a task of ours is a failure.
				for i := 0; i < 200 && ours(p, parent.Tgid); i++ {
					time.Sleep(5 * time.Millisecond)
				}
				if ours(p, parent.Tgid) {
					t.Errorf("thrown-away task %d still exists", p)
				}
			}
			nsLastPidWriter = writeNsLastPid
			if kids := childrenOf(parent.Tgid); len(kids) > 1 {
				t.Errorf("parent has children %v after failed attempts", kids)
			}
			if n := len(threadsOf(parent.Tgid)); flags&unix.CLONE_THREAD != 0 && n != 2 {
				t.Errorf("parent has %d threads, want 2 (itself and the one good clone)", n)
			}
		})
	}
}

func childrenOf(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// PIDs are checked in the new task's own namespace: with CLONE_NEWPID,
// set_tid [1] makes the init of a new PID namespace.
func TestCloneNewPIDNamespace(t *testing.T) {
	needSetTID(t)
	tr := ptrace.NewTracer()
	t.Cleanup(tr.Close)
	parent, scratch := startParent(t, tr)
	req := Request{PID: 1, Flags: unix.CLONE_NEWPID | unix.CLONE_PARENT, Scratch: scratch}
	child, err := Clone(parent, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := child.Kill(); err != nil {
			t.Error(err)
		}
	})
	st, err := readStatus(child.Tid)
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(st["NSpid"]); len(f) != 2 || f[0] != strconv.Itoa(child.Tid) || f[1] != "1" {
		t.Errorf("NSpid %q, want %d 1", st["NSpid"], child.Tid)
	}
	if got, err := child.Syscall(unix.SYS_GETPID); err != nil || got != 1 {
		t.Errorf("getpid in new namespace = %d, %v; want 1", int64(got), err)
	}
	req.Method = NsLastPid
	if _, err := Clone(parent, req); err == nil || !strings.Contains(err.Error(), "ns_last_pid cannot place a task in a new PID namespace") {
		t.Errorf("ns_last_pid with CLONE_NEWPID: %v", err)
	}
}

// ours tells whether pid exists as a child of the test process or of the
// clone parent (a task the test created), not some other process that took
// the PID since.
func ours(pid, parent int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			pp := strings.TrimSpace(v)
			return pp == fmt.Sprint(os.Getpid()) || pp == fmt.Sprint(parent)
		}
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok && strings.TrimSpace(v) == fmt.Sprint(parent) && fmt.Sprint(pid) != strings.TrimSpace(v) {
			return true // a thread of the parent
		}
	}
	return false
}
