package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/testproc"
)

// waitLog waits until the target's log has line.
func (tg *target) waitLog(t *testing.T, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, l := range tg.logLines() {
			if l == line {
				return
			}
			if strings.HasPrefix(l, "BAD") {
				t.Fatalf("target reported %q", l)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log; tail %v", line, tail(tg.logLines()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestoreTree: a session with two process groups, a zombie reaped only
// after restore with its exit code, and bytes in flight in a pipe.
func TestRestoreTree(t *testing.T) {
	tg := startTarget(t, "testdata/tree.c")
	tg.dump(t)
	tg.restore(t)
	tg.expectProgress(t)
	os.WriteFile(filepath.Join(tg.dir, "go"), nil, 0o600)
	tg.waitLog(t, "zombie ok")
	tg.waitLog(t, "pipe ok")
	tg.expectProgress(t)
}

// TestRestoreThreads: TLS, per-thread sigaltstack, a shared mutex.
func TestRestoreThreads(t *testing.T) {
	tg := startTarget(t, "testdata/threads.c")
	tg.dump(t)
	tg.restore(t)
	tg.expectProgress(t)
}

// TestRestoreClockAndRseq: the vDSO clock keeps going forward, and
// sched_getcpu agrees with a re-registered rseq area.
func TestRestoreClockAndRseq(t *testing.T) {
	tg := startTarget(t, "testdata/clock.c")
	tg.dump(t)
	tg.restore(t)
	tg.expectProgress(t)
}

// TestRestoreLeaveStopped: the restored tree stays stopped until SIGCONT.
func TestRestoreLeaveStopped(t *testing.T) {
	tg := startTarget(t, "testdata/threads.c")
	tg.dump(t)
	res, err := Run(Options{ImagesDir: tg.imgs, LeaveStopped: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testproc.KillTree(res.RootPid)
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
	})
	time.Sleep(50 * time.Millisecond)
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", tg.pid))
	if !strings.Contains(string(st), "State:\tT (stopped)") {
		t.Fatalf("restored task with --leave-stopped:\n%s", st)
	}
	n := len(tg.logLines())
	time.Sleep(100 * time.Millisecond)
	if len(tg.logLines()) != n {
		t.Fatal("a stopped task kept logging")
	}
	unix.Kill(tg.pid, unix.SIGCONT)
	tg.expectProgress(t)
}
