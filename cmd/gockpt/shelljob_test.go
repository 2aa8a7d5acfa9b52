package main

import (
	"bytes"
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

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/testproc"
)

// ptyPair opens a pseudo-terminal: the master and the slave's path.
func ptyPair(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// termOutput collects what a terminal's master reads.
type termOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// readTerminal gathers what a pty's master reads until it is closed.
func readTerminal(master *os.File) *termOutput {
	out := &termOutput{}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			if n > 0 {
				out.mu.Lock()
				out.buf.Write(b[:n])
				out.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

func (o *termOutput) waitFor(t *testing.T, s string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		o.mu.Lock()
		ok := strings.Contains(o.buf.String(), s)
		o.mu.Unlock()
		if ok {
			return
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	t.Fatalf("terminal never showed %q; it showed %q", s, o.buf.String())
}

// TestShellJob: a job a shell runs in the foreground of its terminal is
// refused without --shell-job, naming the terminal and the option; with
// it, dump keeps the job and its terminal modes, and restore --shell-job,
// run by the shell on the same terminal, brings the job back there in the
// foreground with its modes (the shell had reset them), answering what is
// typed on the terminal.
func TestShellJob(t *testing.T) {
	shell := testproc.BuildC(t, "testdata/shelljob.c")
	dir := t.TempDir()
	imgs := filepath.Join(t.TempDir(), "img")
	master, slavePath := ptyPair(t)
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	cmd := exec.Command(shell, dir, self, "restore", "-D", imgs, "--shell-job", "-v4", "-o", "restore.log")
	cmd.Env = append(os.Environ(), "GOCKPT_TEST_AS_GOCKPT=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	t.Cleanup(func() { testproc.KillTree(cmd.Process.Pid) })
	out := readTerminal(master)
	out.waitFor(t, "ready")
	b, _ := os.ReadFile(filepath.Join(dir, "job"))
	job, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", job))

	var o, e bytes.Buffer
	if code := run([]string{"dump", "-t", strconv.Itoa(job), "-D", imgs}, &o, &e); code != 1 {
		t.Fatalf("dump without --shell-job exit %d: %s", code, e.String())
	}
	want := fmt.Sprintf("Error: task %d (%s): controlling terminal %s: attached to shell terminal: use --shell-job: gockpt does not dump terminals (CRIU: --shell-job); dump with --shell-job, and restore with --shell-job on a terminal; or start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)\n",
		job, strings.TrimSpace(string(comm)), slavePath)
	if !strings.HasPrefix(e.String(), want) {
		t.Fatalf("stderr\n %q\nwant\n %q", e.String(), want)
	}
	if _, err := master.Write([]byte("p")); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "pong ok")

	o.Reset()
	e.Reset()
	if code := run([]string{"dump", "-t", strconv.Itoa(job), "-D", imgs, "--shell-job"}, &o, &e); code != 0 {
		t.Fatalf("dump --shell-job exit %d: %s", code, e.String())
	}
	out.waitFor(t, "job ended (0x9)")
	// The shell restores the job: it answers on the terminal again.
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", job)); err == nil && !strings.Contains(string(st), ") Z ") {
			if _, err := os.Stat(filepath.Join(imgs, "restore.log")); err == nil {
				break
			}
		}
		if time.Now().After(end) {
			t.Fatalf("job %d not restored", job)
		}
	}
	out.mu.Lock()
	out.buf.Reset()
	out.mu.Unlock()
	for i := 0; i < 500; i++ {
		master.Write([]byte("p"))
		time.Sleep(20 * time.Millisecond)
		out.mu.Lock()
		got := out.buf.String()
		out.mu.Unlock()
		if strings.Contains(got, "pong") {
			break
		}
	}
	out.waitFor(t, "pong ok")
	master.Write([]byte("q"))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(imgs, "restore.log"))
			t.Fatalf("the shell ended with %v; restore.log:\n%s", err, log)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the restored job did not end on q")
	}
}
