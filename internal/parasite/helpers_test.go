package parasite

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "gockpt-parasite-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// buildC compiles testdata/name.c once per test binary run.
func buildC(tb testing.TB, name string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		tb.Skip("no gcc to build the test program")
	}
	out := filepath.Join(buildDir, name)
	cmd := exec.Command("gcc", "-O2", "-pthread", "-Wall", "-o", out, filepath.Join("testdata", name+".c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("gcc %s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

// startChild starts a program and kills and reaps it by PID when the test
// ends, whatever happened.
func startChild(tb testing.TB, path string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(path, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	pid := cmd.Process.Pid
	tb.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// waitFile waits until path exists (a program's "ready" signal).
func waitFile(tb testing.TB, path string) {
	tb.Helper()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("%s did not appear", path)
}

func readCounter(tb testing.TB, path string) uint64 {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// assertProgress checks that the program at pid is alive and keeps
// counting.
func assertProgress(tb testing.TB, pid int, progress string) {
	tb.Helper()
	waitCounter(tb, pid, progress, 1)
	a := readCounter(tb, progress)
	time.Sleep(300 * time.Millisecond)
	b := readCounter(tb, progress)
	var ws unix.WaitStatus
	if wp, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); wp == pid {
		tb.Fatalf("task %d ended: %v (exit status %d)", pid, ws, ws.ExitStatus())
	}
	if b < a+5 {
		tb.Fatalf("task %d counted from %d to %d in 300ms: it is not running its loop", pid, a, b)
	}
}

func waitCounter(tb testing.TB, pid int, path string, min uint64) {
	tb.Helper()
	for i := 0; i < 300; i++ {
		var ws unix.WaitStatus
		if wp, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); wp == pid {
			tb.Fatalf("task %d ended: %v (exit status %d)", pid, ws, ws.ExitStatus())
		}
		if _, err := os.Stat(path); err == nil && readCounter(tb, path) >= min {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("%s never reached %d", path, min)
}

func readMaps(tb testing.TB, pid int) string {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func statusField(tb testing.TB, pid int, key string) string {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

func newTracer(tb testing.TB) *ptrace.Tracer {
	tr := ptrace.NewTracer()
	tb.Cleanup(tr.Close)
	return tr
}

// clobberYmm7 zeroes xmm7 and the upper half of ymm7 in an xsave image, as
// a parasite that used vector registers would have.
func clobberYmm7(te *ptrace.Tracee) error {
	x, err := te.GetXstate()
	if err != nil {
		return err
	}
	avxOff, _ := ptrace.XstateComponent(2)
	for i := 0; i < 16; i++ {
		x[160+7*16+i] = 0
		x[int(avxOff)+7*16+i] = 0
	}
	return te.SetXstate(x)
}

// fdLinks lists the task's descriptors and what they point to.
func fdLinks(tb testing.TB, pid int) string {
	tb.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+" -> "+l)
	}
	return strings.Join(out, "\n")
}
