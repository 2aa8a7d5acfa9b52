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

// TestKilledDumpNeverHarms kills gockpt with SIGKILL at random moments of
// dumps of a 256 MiB process: every time, the process must run on
// correctly, untraced, with exactly the mappings it had.
func TestKilledDumpNeverHarms(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 20 dumps of 256 MiB")
	}
	gockpt := testproc.BuildGockpt(t)
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

	// How long a whole dump takes, to spread the kills over it: the
	// shorter of two (the first may be slow, its caches cold), and the
	// kills within its first nine tenths, so that most land midway.
	whole := time.Duration(1 << 62)
	for range 2 {
		start := time.Now()
		full := exec.Command(gockpt, "dump", "-t", fmt.Sprint(p.Pid), "-D", filepath.Join(t.TempDir(), "img"), "--leave-running")
		if b, err := full.CombinedOutput(); err != nil {
			t.Fatalf("full dump: %v\n%s", err, b)
		}
		whole = min(whole, time.Since(start)*9/10)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	killedMidway := 0
	for i := 0; i < 20; i++ {
		img := filepath.Join(t.TempDir(), "img")
		cmd := exec.Command(gockpt, "dump", "-t", fmt.Sprint(p.Pid), "-D", img, "--leave-running")
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(rng.Int63n(int64(whole)))
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if err != nil {
			killedMidway++
		} else {
			// Done before the kill: dumps run faster now (the machine
			// is less busy); aim the next kills within this one.
			whole = min(whole, time.Since(began)*9/10)
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

// TestKilledPreDumpNeverHarms kills gockpt pre-dump --track-mem with SIGKILL
// at 25 random moments: the target must run on correctly, untraced, with the
// same mappings and the same open files (the userfaultfd made inside it is
// closed by gockpt or, if gockpt died first, by the watchdog).
func TestKilledPreDumpNeverHarms(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 25 pre-dumps of 256 MiB")
	}
	gockpt := testproc.BuildGockpt(t)
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
	fdsBefore := fdList(p.Pid)
	var keepers []int
	t.Cleanup(func() {
		for _, k := range keepers {
			syscall.Kill(k, syscall.SIGKILL)
		}
	})
	preDump := func(img string) *exec.Cmd {
		return exec.Command(gockpt, "pre-dump", "-t", fmt.Sprint(p.Pid), "-D", img, "--track-mem")
	}
	img := filepath.Join(t.TempDir(), "img")
	start := time.Now()
	if b, err := preDump(img).CombinedOutput(); err != nil {
		t.Fatalf("pre-dump: %v\n%s", err, b)
	}
	whole := time.Since(start)
	keepers = append(keepers, keeperOf(img)...)
	// Let that tracking go, so that each pre-dump below arms its own.
	for _, k := range keeperOf(img) {
		syscall.Kill(k, syscall.SIGKILL)
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	killedMidway := 0
	for i := 0; i < 25; i++ {
		img := filepath.Join(t.TempDir(), "img")
		cmd := preDump(img)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Every other kill falls in the first half, where the tracker is
		// made inside the target.
		span := whole
		if i%2 == 1 {
			span = whole / 2
		}
		delay := time.Duration(rng.Int63n(int64(span)))
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killedMidway++
		}
		checkUnharmed(t, i, delay, p.Pid, logf, mapsPath, mapsBefore)
		deadline := time.Now().Add(5 * time.Second)
		for fdList(p.Pid) != fdsBefore {
			if time.Now().After(deadline) {
				t.Fatalf("kill %d after %v: the target's open files changed:\n%s\n---\n%s", i, delay, fdsBefore, fdList(p.Pid))
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, k := range keeperOf(img) {
			keepers = append(keepers, k)
			syscall.Kill(k, syscall.SIGKILL)
		}
	}
	t.Logf("%d of 25 pre-dumps killed before they finished (a whole one takes %v)", killedMidway, whole)
	if killedMidway < 12 {
		t.Errorf("only %d pre-dumps were killed midway: the kills missed them", killedMidway)
	}
}

// fdList describes a task's open files: numbers and what they are.
func fdList(pid int) string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		fmt.Fprintf(&b, "%s -> %s\n", e.Name(), l)
	}
	return b.String()
}

// keeperOf finds the PID of the keeper a pre-dump started, from the log
// the keeper writes in its images directory.
func keeperOf(img string) []int {
	b, err := os.ReadFile(filepath.Join(img, "mem-keeper.log"))
	if err != nil {
		return nil
	}
	var pid int
	if i := bytes.Index(b, []byte("mem-keeper[")); i >= 0 {
		fmt.Sscanf(string(b[i+len("mem-keeper["):]), "%d", &pid)
	}
	if pid <= 0 {
		return nil
	}
	return []int{pid}
}
