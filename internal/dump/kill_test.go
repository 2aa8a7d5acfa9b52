package dump

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// buildGockpt builds the gockpt binary for tests that run it as a process.
func buildGockpt(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "gockpt")
	cmd := exec.Command("go", "build", "-o", out, "github.com/gockpt/gockpt/cmd/gockpt")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestKilledDumpNeverHarms kills gockpt with SIGKILL at random moments of
// dumps of a 256 MiB process: every time, the process must run on
// correctly, untraced, with exactly the mappings it had.
func TestKilledDumpNeverHarms(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 20 dumps of 256 MiB")
	}
	gockpt := buildGockpt(t)
	bin := testproc.BuildC(t, "testdata/bigcheck.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir, "256")
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 30*time.Second)
	logf := filepath.Join(dir, "log")
	mapsPath := fmt.Sprintf("/proc/%d/maps", p.Pid)
	mapsBefore, err := os.ReadFile(mapsPath)
	if err != nil {
		t.Fatal(err)
	}

	// How long a whole dump takes, to spread the kills over it.
	start := time.Now()
	full := exec.Command(gockpt, "dump", "-t", fmt.Sprint(p.Pid), "-D", filepath.Join(t.TempDir(), "img"), "--leave-running")
	if b, err := full.CombinedOutput(); err != nil {
		t.Fatalf("full dump: %v\n%s", err, b)
	}
	whole := time.Since(start)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	killedMidway := 0
	for i := 0; i < 20; i++ {
		img := filepath.Join(t.TempDir(), "img")
		cmd := exec.Command(gockpt, "dump", "-t", fmt.Sprint(p.Pid), "-D", img, "--leave-running")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int63n(int64(whole)))
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err != nil {
			killedMidway++
		}
		checkUnharmed(t, i, delay, p.Pid, logf, mapsPath, mapsBefore)
	}
	t.Logf("%d of 20 dumps killed before they finished (a whole dump takes %v)", killedMidway, whole)
	if killedMidway < 10 {
		t.Errorf("only %d dumps were killed midway: the kills missed the dump", killedMidway)
	}
}

func checkUnharmed(t *testing.T, i int, delay time.Duration, pid int, logf, mapsPath string, mapsBefore []byte) {
	t.Helper()
	// The kernel detaches the tracees of a dead tracer at once; give a
	// self-curing parasite a moment to put the task back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		maps, _ := os.ReadFile(mapsPath)
		if strings.Contains(string(st), "TracerPid:\t0\n") && bytes.Equal(maps, mapsBefore) {
			break
		}
		if time.Now().After(deadline) {
			if !testproc.Alive(pid) {
				t.Fatalf("kill %d after %v: the target died: %s", i, delay, exitOf(pid))
			}
			t.Fatalf("kill %d after %v: the target is still traced or its maps changed:\n%s\n---\n%s", i, delay, mapsBefore, maps)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, _ := os.ReadFile(logf)
	before := bytes.Count(b, []byte("\n"))
	deadline = time.Now().Add(5 * time.Second)
	for {
		b, _ = os.ReadFile(logf)
		if bytes.Count(b, []byte("\n")) >= before+3 {
			break
		}
		if !testproc.Alive(pid) {
			t.Fatalf("kill %d after %v: the target died", i, delay)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kill %d after %v: the target stopped making progress", i, delay)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if bytes.Contains(b, []byte("BAD")) {
		t.Fatalf("kill %d after %v: the target found its memory damaged", i, delay)
	}
}

// exitOf describes how our child pid ended.
func exitOf(pid int) string {
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err != nil {
		return err.Error()
	}
	if ws.Signaled() {
		return fmt.Sprintf("killed by %v", ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}
