package ptrace

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startSleeper starts a child that sleeps, and kills it by PID when the test ends.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Let it reach nanosleep so the seize finds it inside a syscall.
	time.Sleep(50 * time.Millisecond)
	return cmd
}

func TestSeizeInjectDetach(t *testing.T) {
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	tr := NewTracer()
	defer tr.Close()
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	before, err := te.GetRegs()
	if err != nil {
		t.Fatal(err)
	}
	got, err := te.Syscall(unix.SYS_GETPID)
	if err != nil {
		t.Fatal(err)
	}
	if int(got) != pid {
		t.Fatalf("injected getpid = %d, want %d", got, pid)
	}
	addr, err := te.Syscall(unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil || Errno(addr) != 0 {
		t.Fatalf("injected mmap = %#x, %v", addr, err)
	}
	if err := WriteMem(pid, addr, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if err := ReadMem(pid, addr, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read back %q, %v", buf, err)
	}
	if r, err := te.Syscall(unix.SYS_MUNMAP, addr, 4096); err != nil || r != 0 {
		t.Fatalf("injected munmap = %d, %v", int64(r), err)
	}
	// A failing syscall reports -errno.
	if r, err := te.Syscall(unix.SYS_CLOSE, 12345); err != nil || Errno(r) != unix.EBADF {
		t.Fatalf("injected close(12345) = %d, %v; want -EBADF", int64(r), err)
	}
	after, err := te.GetRegs()
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Fatalf("registers changed by injection:\n%+v\n%+v", before, after)
	}
	x, err := te.GetXstate()
	if err != nil {
		t.Fatal(err)
	}
	if len(x) < 576 {
		t.Fatalf("xstate is %d bytes, want at least the 576-byte legacy+header area", len(x))
	}
	if err := te.SetXstate(x); err != nil {
		t.Fatal(err)
	}
	if err := te.Detach(); err != nil {
		t.Fatal(err)
	}
	// The sleeper must still be sleeping, not dead or crashed.
	time.Sleep(50 * time.Millisecond)
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(st)); f[2] != "S" {
		t.Fatalf("after detach the sleeper is in state %s, want S", f[2])
	}
}

func TestSeizeMissingTask(t *testing.T) {
	tr := NewTracer()
	defer tr.Close()
	_, err := tr.Seize(1 << 30)
	if err == nil || !strings.Contains(err.Error(), "task 1073741824: seize") {
		t.Fatalf("seize of a missing task: %v", err)
	}
}

func TestSeizeTree(t *testing.T) {
	// sh starts two sleepers and a zombie-to-be, then waits.
	cmd := exec.Command("sh", "-c", "sleep 1000 & sleep 1000 & (true &) ; exec sleep 1000")
	cmd.SysProcAttr = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range descendants(cmd.Process.Pid) {
			unix.Kill(p, unix.SIGKILL)
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	time.Sleep(100 * time.Millisecond)
	tr := NewTracer()
	defer tr.Close()
	tree, err := tr.SeizeTree(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Detach()
	tasks := tree.Tasks()
	if len(tasks) != 3 {
		t.Fatalf("seized %d tasks, want 3 (exec'd sleep and two children)", len(tasks))
	}
	for _, task := range tasks {
		if len(task.Threads) != 1 || task.Threads[0].Tid != task.Pid {
			t.Fatalf("task %d threads %v", task.Pid, task.Threads)
		}
		// TracerPid names the tracer thread, which must be one of ours.
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", task.Pid))
		_, rest, _ := strings.Cut(string(st), "TracerPid:\t")
		tracer, _, _ := strings.Cut(rest, "\n")
		if _, err := os.Stat("/proc/self/task/" + tracer); tracer == "0" || err != nil {
			t.Fatalf("task %d is traced by %q, not by us", task.Pid, tracer)
		}
	}
}

func descendants(pid int) []int {
	var out []int
	tids, _ := listThreads(pid)
	for _, tid := range tids {
		kids, _ := listChildren(pid, tid)
		for _, k := range kids {
			out = append(out, k)
			out = append(out, descendants(k)...)
		}
	}
	return out
}

func TestSyscallForkAdoptsChild(t *testing.T) {
	cmd := startSleeper(t)
	tr := NewTracer()
	defer tr.Close()
	te, err := tr.Seize(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer te.Detach()
	if err := te.SetOptions(TraceFork | TraceClone | TraceVfork); err != nil {
		t.Fatal(err)
	}
	ret, child, err := te.SyscallFork(unix.SYS_FORK)
	if err != nil {
		t.Fatal(err)
	}
	if child == nil || int(ret) != child.Tid {
		t.Fatalf("fork returned %d, child %v", int64(ret), child)
	}
	t.Cleanup(func() {
		unix.Kill(child.Tid, unix.SIGKILL)
		tr.Do(func() error { wait(child.Tid); return nil })
		te.Syscall(unix.SYS_WAIT4, uint64(child.Tid), 0, 0, 0) // reap in the parent
	})
	got, err := child.Syscall(unix.SYS_GETPID)
	if err != nil || int(got) != child.Tid {
		t.Fatalf("getpid in the new child = %d, %v; want %d", int64(got), err, child.Tid)
	}
	ppid, err := child.Syscall(unix.SYS_GETPPID)
	if err != nil || int(ppid) != cmd.Process.Pid {
		t.Fatalf("getppid in the new child = %d, %v; want %d", int64(ppid), err, cmd.Process.Pid)
	}
}

// TestParkingOnTracerDeath: injected syscalls run from the parking code, so
// a thread whose tracer dies mid-injection parks in pause instead of running
// on with registers that are not its own; its saved state then brings it
// back. The parking code leaves /proc/PID/maps as it was.
func TestParkingOnTracerDeath(t *testing.T) {
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	tr := NewTracer()
	defer tr.Close()
	te, err := tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := te.Syscall(unix.SYS_GETPID); err != nil || int(r) != pid {
		t.Fatalf("getpid %d %v", r, err)
	}
	addr, ok, err := ParkingAddr(pid)
	if err != nil || !ok {
		t.Fatalf("parking code not installed: %v", err)
	}
	if mapsNow, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid)); string(mapsNow) != string(mapsBefore) {
		t.Fatalf("maps changed by the parking code:\n%s\n---\n%s", mapsBefore, mapsNow)
	}
	orig, _ := te.GetRegs()
	mask, _ := te.GetSigmask()
	// What a dying gockpt leaves: injected registers, all signals blocked.
	regs := orig
	regs.Rip, regs.Rax, regs.Orig_rax = addr, unix.SYS_GETPID, ^uint64(0)
	if err := te.SetSigmask(^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if err := te.SetRegs(&regs); err != nil {
		t.Fatal(err)
	}
	if err := te.Detach(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
		if strings.HasPrefix(string(b), "34 ") { // parked in pause
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread did not park: /proc/%d/syscall %q", pid, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	te, err = tr.Seize(pid)
	if err != nil {
		t.Fatal(err)
	}
	now, _ := te.GetRegs()
	if now.Rip < addr || now.Rip >= addr+ParkingCodeLen {
		t.Fatalf("parked at %#x, outside the parking code at %#x", now.Rip, addr)
	}
	te.SetSigmask(mask)
	te.SetRegs(&orig)
	te.Detach()
	time.Sleep(50 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("the thread died after its state was put back")
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

// TestParkedAfterExit: a thread past the close of the parasite's way out is
// in the pause loop or right after the close; anywhere before is not.
func TestParkedAfterExit(t *testing.T) {
	const park = 0x7000
	for off, want := range map[uint64]bool{
		0: false, 2: true, 7: true, 9: true, 10: true, 11: false, // 11: the way out's munmap, not run yet
		13: false, 16: false, 21: false, 23: true, 25: false, 0x100: false,
	} {
		if got := ParkedAfterExit(park, park+off); got != want {
			t.Errorf("ParkedAfterExit at +%d = %v, want %v", off, got, want)
		}
	}
	if len(parkingCode) != ParkingCodeLen || parkingCode[ParkingExit] != 0x0f || parkingCode[ParkingExit+1] != 0x05 {
		t.Fatalf("parking code %x: %d bytes, way out at %d", parkingCode, len(parkingCode), ParkingExit)
	}
	// Both jumps land on the pause loop's mov at offset 2.
	for _, at := range []int{9, 23} {
		if parkingCode[at] != 0xeb || at+2+int(int8(parkingCode[at+1])) != 2 {
			t.Errorf("jump at %d goes to %d", at, at+2+int(int8(parkingCode[at+1])))
		}
	}
}
