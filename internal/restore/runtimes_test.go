package restore

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// startProgram starts a non-C target (argv ready to run) that follows the
// DIR/ready, DIR/log convention.
func startProgram(t *testing.T, argv ...string) *target {
	t.Helper()
	dir := t.TempDir()
	p := testproc.Start(t, argv[0], append(argv[1:], dir)...)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 20*time.Second)
	return &target{proc: p, pid: p.Pid, dir: dir, imgs: filepath.Join(t.TempDir(), "img")}
}

// TestRestoreGoProgram: the Go runtime (threads, epoll netpoller with its
// eventfd, timers, GC) survives dump and restore.
func TestRestoreGoProgram(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "goprog")
	build := exec.Command("go", "build", "-o", bin, "./testdata/goprog")
	build.Env = append(build.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tg := startProgram(t, bin)
	time.Sleep(50 * time.Millisecond)
	tg.dump(t)
	tg.restore(t)
	tg.expectProgress(t)
}

// TestRestorePythonProgram: CPython with threads.
func TestRestorePythonProgram(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on this machine")
	}
	tg := startProgram(t, py, "testdata/pyprog.py")
	time.Sleep(50 * time.Millisecond)
	tg.dump(t)
	tg.restore(t)
	tg.expectProgress(t)
}
