package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
