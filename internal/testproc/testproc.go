// Package testproc starts real processes for tests and guarantees they are
// gone afterwards: every process a test starts, and every descendant it
// forks, is killed by PID and reaped in t.Cleanup, whatever the outcome.
package testproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu  sync.Mutex
	built    = map[string]string{}
	buildDir string
)

// binDir is where test binaries go, one directory per test binary; the
// caller holds buildMu.
func binDir(t testing.TB) string {
	if buildDir == "" {
		d, err := os.MkdirTemp("", "gockpt-testbin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	return buildDir
}

// BuildC compiles a C source file with gcc once per test binary and returns
// the executable's path.
func BuildC(t testing.TB, src string, extra ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := src + "\x00" + strings.Join(extra, "\x00")
	if p, ok := built[key]; ok {
		return p
	}
	out := filepath.Join(binDir(t), fmt.Sprintf("%s-%d", strings.TrimSuffix(filepath.Base(src), ".c"), len(built)))
	args := append([]string{"-O1", "-g0", "-o", out, src, "-lpthread"}, extra...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	built[key] = out
	return out
}

// BuildGo builds the Go main package in dir (a path go build takes, such
// as ./testdata/prog) once per test binary, statically (CGO_ENABLED=0),
// and returns the executable's path.
func BuildGo(t testing.TB, dir string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := "\x00go\x00" + dir
	if p, ok := built[key]; ok {
		return p
	}
	out := filepath.Join(binDir(t), fmt.Sprintf("%s-%d", filepath.Base(dir), len(built)))
	cmd := exec.Command("go", "build", "-o", out, dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, b)
	}
	built[key] = out
	return out
}

// Proc is a started process.
type Proc struct {
	Pid int
	Cmd *exec.Cmd
	t   testing.TB
}

// Start runs bin in a new session with stdio on /dev/null; cleanup kills it
// and all its descendants by PID.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return StartCmd(t, Command(bin, args...))
}

// Command prepares bin to run in a new session, for callers that adjust it
// (credentials, environment) before StartCmd.
func Command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd
}

// StartCmd starts cmd; cleanup kills it and its descendants by PID.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Pid: cmd.Process.Pid, Cmd: cmd, t: t}
	t.Cleanup(p.Kill)
	return p
}

// Kill kills the process and every descendant by PID, then reaps it.
func (p *Proc) Kill() {
	KillTree(p.Pid)
	if p.Cmd != nil && p.Cmd.ProcessState == nil {
		p.Cmd.Wait()
	}
}

// KillTree SIGKILLs pid and all its descendants, by PID. Every task is
// stopped first, and the tree listed again until no new task shows up:
// only then is anyone killed, so a parent that forks when a child dies
// (nginx's master respawns its workers) leaves no orphan behind, and a
// killed parent's children, reparented, are still on the list.
func KillTree(pid int) {
	stopped := map[int]bool{}
	for round := 0; round < 20; round++ {
		fresh := 0
		for _, p := range append([]int{pid}, Descendants(pid)...) {
			if !stopped[p] {
				syscall.Kill(p, syscall.SIGSTOP)
				stopped[p] = true
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	for p := range stopped {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// Descendants lists every descendant of pid (children of all its threads).
func Descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, tk := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, tk.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			c, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			out = append(out, c)
			out = append(out, Descendants(c)...)
		}
	}
	return out
}

// WaitFile waits until path exists.
func WaitFile(t testing.TB, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Alive tells whether pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// BuildGockpt builds the gockpt binary, once per test binary, for tests that
// run it as a process (to kill it midway, say).
func BuildGockpt(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	const key = "\x00gockpt"
	if p, ok := built[key]; ok {
		return p
	}
	out := filepath.Join(binDir(t), "gockpt")
	cmd := exec.Command("go", "build", "-o", out, "github.com/gockpt/gockpt/cmd/gockpt")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	built[key] = out
	return out
}
