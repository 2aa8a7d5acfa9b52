package lsm

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestDetectMatchesHost(t *testing.T) {
	l := Detect()
	_, err := os.ReadFile("/proc/self/attr/current")
	switch l.Name() {
	case "none":
		if selinuxEnabled() {
			t.Fatal("Detect chose none on an SELinux host")
		}
	case "selinux":
		if err != nil {
			t.Fatalf("SELinux detected but /proc/self/attr/current: %v", err)
		}
	default:
		t.Fatalf("Detect() = %q", l.Name())
	}
}

func TestProcessLabel(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	want := ""
	if b, err := os.ReadFile("/proc/self/attr/current"); err == nil {
		want = strings.TrimRight(string(b), "\x00\n")
	}
	for _, l := range []LSM{SELinux{}, Detect()} {
		got, err := l.ProcessLabel(pid)
		if err != nil {
			t.Fatalf("%s: ProcessLabel(%d): %v", l.Name(), pid, err)
		}
		if l.Name() == "selinux" && got != want {
			t.Fatalf("%s: ProcessLabel(%d) = %q, want %q", l.Name(), pid, got, want)
		}
	}
	// A task that does not exist is an error, not "no label".
	if _, err := (SELinux{}).ProcessLabel(1 << 30); err == nil || !strings.Contains(err.Error(), "task 1073741824") {
		t.Fatalf("label of a missing task: %v", err)
	}
}

func TestSocketCreateLabelReset(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, l := range []LSM{SELinux{}, Detect(), None{}} {
		if err := l.SetSocketCreateLabel(""); err != nil {
			t.Fatalf("%s: reset: %v", l.Name(), err)
		}
	}
	if err := (None{}).SetSocketCreateLabel("system_u:system_r:foo_t:s0"); err == nil ||
		err.Error() != `lsm: cannot label sockets "system_u:system_r:foo_t:s0": no security module active on this host` {
		t.Fatalf("None with a label: %v", err)
	}
}

func TestProcessLabelWrite(t *testing.T) {
	w, err := (SELinux{}).ProcessLabelWrite("system_u:system_r:container_t:s0:c1,c2")
	if err != nil || w.Path != "/proc/thread-self/attr/current" || string(w.Data) != "system_u:system_r:container_t:s0:c1,c2" {
		t.Fatalf("SELinux write = %+v, %v", w, err)
	}
	if w, err := (SELinux{}).ProcessLabelWrite(""); err != nil || w.Path != "" {
		t.Fatalf("SELinux empty write = %+v, %v", w, err)
	}
	if w, err := (None{}).ProcessLabelWrite(""); err != nil || w.Path != "" {
		t.Fatalf("None empty write = %+v, %v", w, err)
	}
	if _, err := (None{}).ProcessLabelWrite("x_u:x_r:x_t:s0"); err == nil {
		t.Fatal("None accepted a label it cannot restore")
	}
}

func TestRecorder(t *testing.T) {
	r := &Recorder{Inner: None{}, Labels: map[int]string{42: "a_u:a_r:a_t:s0"}}
	if l, err := r.ProcessLabel(42); err != nil || l != "a_u:a_r:a_t:s0" {
		t.Fatalf("ProcessLabel(42) = %q, %v", l, err)
	}
	if l, err := r.ProcessLabel(os.Getpid()); err != nil || l != "" {
		t.Fatalf("ProcessLabel(self) = %q, %v", l, err)
	}
	r.Mark("listen")
	// None refuses a real label: the recorder passes the refusal on.
	if err := r.SetSocketCreateLabel("a_u:a_r:a_t:s0"); err == nil {
		t.Fatal("Inner's error was swallowed")
	}
	r.SetSocketCreateLabel("")
	want := []string{
		"ProcessLabel(42)",
		"ProcessLabel(" + strconv.Itoa(os.Getpid()) + ")",
		"listen",
		`SetSocketCreateLabel("a_u:a_r:a_t:s0")`,
		`SetSocketCreateLabel("")`,
	}
	if got := r.Calls(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
