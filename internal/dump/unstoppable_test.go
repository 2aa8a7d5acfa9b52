package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/testproc"
	pb "github.com/gockpt/gockpt/proto"
)

// statusField is one field of /proc/PID/status, "" if unreadable.
func statusField(pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// waitField waits until the status field of pid reads want.
func waitField(t *testing.T, pid int, key, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for statusField(pid, key) != want {
		if time.Now().After(deadline) {
			t.Fatalf("task %d: %s is %q, want %q", pid, key, statusField(pid, key), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestVforkParentRefused: a parent blocked in vfork cannot be stopped
// until its child execs or exits. Dump gives up after --timeout, names the
// task, its state and the child, and leaves the tree as it was: not
// traced, and the parent resumes normally once its child is gone.
func TestVforkParentRefused(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/vforkparent.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	b, err := os.ReadFile(filepath.Join(dir, "info"))
	if err != nil {
		t.Fatal(err)
	}
	var parent, child int
	if _, err := fmt.Sscanf(string(b), "parent %d\nchild %d\n", &parent, &child); err != nil || parent != p.Pid {
		t.Fatalf("info %q: parent %d child %d (%v), want parent %d", b, parent, child, err, p.Pid)
	}
	waitField(t, parent, "State", "D (disk sleep)")

	img := filepath.Join(t.TempDir(), "img")
	start := time.Now()
	_, err = Run(Options{Pid: parent, ImagesDir: img, LeaveRunning: true, Timeout: time.Second})
	took := time.Since(start)
	want := fmt.Sprintf("task %d (%s) is in vfork: waiting for child %d (%s) to exec or exit, and cannot be stopped until then (waited 1s, state D (disk sleep)): dump again once child %d has exec'd or exited",
		parent, comm(parent), child, comm(child), child)
	if err == nil || err.Error() != want {
		t.Fatalf("dump of a vfork parent:\n got %v\nwant %s", err, want)
	}
	if took > 4*time.Second {
		t.Errorf("refusal took %v, want about the 1 s --timeout", took)
	}
	if _, err := os.Stat(filepath.Join(img, "inventory.img")); err == nil {
		t.Errorf("a refused dump left inventory.img")
	}
	// The tracer thread ended with Run: the kernel lets both go.
	waitField(t, parent, "TracerPid", "0")
	waitField(t, child, "TracerPid", "0")
	if st := statusField(parent, "State"); st != "D (disk sleep)" {
		t.Errorf("parent after the refusal: state %q, want still D in vfork", st)
	}
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testproc.WaitFile(t, filepath.Join(dir, "resumed"), 5*time.Second)
	// Resumed and back in pause(): no stop left over from the interrupt.
	waitField(t, parent, "State", "S (sleeping)")
	time.Sleep(50 * time.Millisecond)
	if st := statusField(parent, "State"); st != "S (sleeping)" {
		t.Errorf("parent after its child exited: state %q, want S (sleeping)", st)
	}
}

// TestStoppedTaskDumped: a child stopped by job control (SIGTSTP, in a
// process group of its own) is dumped, recorded as CRIU's TASK_STOPPED
// with its stop signal, and left stopped by --leave-running with nothing
// queued: SIGCONT resumes it.
func TestStoppedTaskDumped(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTSTP, syscall.SIGSTOP, syscall.SIGTTIN} {
		t.Run(strconv.Itoa(int(sig)), func(t *testing.T) {
			dir := t.TempDir()
			p := testproc.Start(t, testproc.BuildC(t, "testdata/stopped.c"), dir, strconv.Itoa(int(sig)))
			testproc.WaitFile(t, filepath.Join(dir, "child"), 10*time.Second)
			b, err := os.ReadFile(filepath.Join(dir, "child"))
			if err != nil {
				t.Fatal(err)
			}
			kid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			waitField(t, kid, "State", "T (stopped)")
			img := filepath.Join(t.TempDir(), "img")
			if _, err := Run(Options{Pid: p.Pid, ImagesDir: img, LeaveRunning: true}); err != nil {
				t.Fatal(err)
			}
			core := decodeCoreTc(t, img, kid)
			if core.GetTaskState() != images.TaskStopped || core.GetStopSigno() != uint32(sig) {
				t.Errorf("core of %d: task_state %d stop_signo %d, want %d and %d", kid, core.GetTaskState(), core.GetStopSigno(), images.TaskStopped, sig)
			}
			if st := decodeCoreTc(t, img, p.Pid).GetTaskState(); st != images.TaskAlive {
				t.Errorf("core of the running parent: task_state %d, want %d", st, images.TaskAlive)
			}
			waitField(t, kid, "State", "T (stopped)")
			if v := statusField(kid, "SigPnd"); v != "0000000000000000" {
				t.Errorf("stopped child after dump: SigPnd %s, want nothing queued", v)
			}
			if v := statusField(kid, "ShdPnd"); v != "0000000000000000" {
				t.Errorf("stopped child after dump: ShdPnd %s, want nothing queued", v)
			}
			syscall.Kill(kid, syscall.SIGCONT)
			waitField(t, kid, "State", "S (sleeping)")
		})
	}
}

// decodeCoreTc reads the task core of pid from a dump.
func decodeCoreTc(t *testing.T, img string, pid int) *pb.TaskCoreEntry {
	t.Helper()
	d, err := images.OpenDir(img)
	if err != nil {
		t.Fatal(err)
	}
	var core pb.CoreEntry
	if err := d.ReadOne(images.CoreFile(pid), &core); err != nil {
		t.Fatal(err)
	}
	return core.GetTc()
}

// TestLeaderlessGroupRefused: a task in a process group whose leader has
// exited, in a session the tree leads, cannot be put back in that group
// (no task of the restored tree has its number): dump refuses it before
// touching the tree.
func TestLeaderlessGroupRefused(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/orphangroup.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	b, err := os.ReadFile(filepath.Join(dir, "info"))
	if err != nil {
		t.Fatal(err)
	}
	var member, group int
	if _, err := fmt.Sscanf(string(b), "member %d\ngroup %d\n", &member, &group); err != nil {
		t.Fatalf("info %q: %v", b, err)
	}
	t.Cleanup(func() { syscall.Kill(member, syscall.SIGKILL) })
	mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", member))
	_, err = Run(Options{Pid: p.Pid, ImagesDir: filepath.Join(t.TempDir(), "img")})
	want := fmt.Sprintf("task %d (%s): process group %d, whose leader (PID %d) is no longer in the tree: gockpt does not dump process groups whose leader has left the tree; make the task lead a group of its own (setpgid(0, 0)), or keep the group's leader in the tree until the dump is done", member, comm(member), group, group)
	if err == nil || err.Error() != want {
		t.Fatalf("error\n %v\nwant\n %s", err, want)
	}
	expectUntouched(t, member, mapsBefore)
}
