package dump

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// TestSeccompKillFilterSurvives: the target's seccomp filter kills it on
// syscalls dump and pre-dump inject (memfd_create for the parasite, brk,
// userfaultfd for the tracker). The filter is suspended for the time of the
// freeze, so the target runs on.
func TestSeccompKillFilterSurvives(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/seccompkill.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	imgs := t.TempDir()
	if _, err := Run(Options{Pid: p.Pid, ImagesDir: filepath.Join(imgs, "full"), LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	expectLogging(t, p.Pid, filepath.Join(dir, "log"))
	st, err := PreDump(Options{Pid: p.Pid, ImagesDir: filepath.Join(imgs, "pre"), TrackMem: true, KeeperArgs: testproc.KeeperArgs()})
	if err != nil {
		t.Fatal(err)
	}
	if k := trackedKeeper(filepath.Join(imgs, "pre")); k > 0 {
		t.Cleanup(func() { testproc.KillTree(k) })
	}
	expectLogging(t, p.Pid, filepath.Join(dir, "log"))
	if _, err := Run(Options{Pid: p.Pid, ImagesDir: filepath.Join(imgs, "final"), TrackMem: true, PrevImagesDir: "../pre", LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	expectLogging(t, p.Pid, filepath.Join(dir, "log"))
	t.Logf("pre-dump wrote %d pages", st.PagesWritten)
}

// expectLogging waits for new lines in the target's log.
func expectLogging(t *testing.T, pid int, log string) {
	t.Helper()
	b, _ := os.ReadFile(log)
	before := bytes.Count(b, []byte("\n"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ = os.ReadFile(log)
		if bytes.Count(b, []byte("\n")) >= before+3 {
			return
		}
		if !testproc.Alive(pid) {
			t.Fatalf("task %d died: %s", pid, exitOf(pid))
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %d stopped logging", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPreDumpLeavesOwnUffdAlone: a task that uses userfaultfd itself is not
// tracked, so its own registrations keep working after a pre-dump.
func TestPreDumpLeavesOwnUffdAlone(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/ownuffd.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	imgs := t.TempDir()
	if _, err := PreDump(Options{Pid: p.Pid, ImagesDir: filepath.Join(imgs, "pre"), TrackMem: true, KeeperArgs: testproc.KeeperArgs()}); err != nil {
		t.Fatal(err)
	}
	if k := trackedKeeper(filepath.Join(imgs, "pre")); k > 0 {
		t.Cleanup(func() { testproc.KillTree(k) })
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		if len(b) > 0 {
			if string(b) != "register ok\n" {
				t.Fatalf("the task's own userfaultfd after a pre-dump: %s", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the task did not log")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
