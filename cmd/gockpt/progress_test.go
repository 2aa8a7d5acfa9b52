package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// TestProgressOnTerminal runs the gockpt binary as a user does: with
// stderr on a terminal, pre-dump, dump and restore show their progress
// line (no delay here, so that no test waits a second) and clear it before
// the summary; with stderr on a pipe, stderr stays empty.
func TestProgressOnTerminal(t *testing.T) {
	gockpt := testproc.BuildGockpt(t)
	bin := testproc.BuildC(t, "testdata/exiter.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	imgs := t.TempDir()

	// gockpt runs with stdout on a buffer and stderr on the terminal (or a
	// pipe, when tty is nil); it returns stdout, stderr and the exit status.
	gock := func(tty *testproc.Pty, args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(gockpt, append([]string{"--no-default-config"}, args...)...)
		cmd.Env = append(os.Environ(), progressDelayEnv+"=0s")
		var stdout, stderr bytes.Buffer
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		if tty != nil {
			cmd.Stderr = tty.Tty
		}
		err := cmd.Run()
		if _, exited := err.(*exec.ExitError); err != nil && !exited {
			t.Fatalf("gockpt %q: %v", args, err)
		}
		if tty != nil {
			return stdout.String(), tty.Output(), cmd.ProcessState.ExitCode()
		}
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	// onTerminal checks the terminal got progress lines with the label and
	// ends with the line cleared.
	onTerminal := func(what, out, label string) {
		t.Helper()
		if !strings.HasPrefix(out, "\r   0% |") || !strings.Contains(out, "|  "+label+": 0/") ||
			!strings.Contains(out, " pages") || !strings.HasSuffix(out, "\x1b[2K\r") {
			t.Errorf("%s: the terminal got %q: want progress lines of %q, then the line cleared", what, out, label)
		}
	}
	// restore runs without -d: gockpt waits for the restored task, which
	// finds DIR/go and exits 7, and reaps it.
	goFile := filepath.Join(dir, "go")
	pid := fmt.Sprint(p.Pid)

	out, term, code := gock(testproc.OpenPty(t), "pre-dump", "-t", pid, "-D", filepath.Join(imgs, "pre1"))
	onTerminal("pre-dump", term, "Pre-dumping")
	if code != 0 || !strings.HasPrefix(out, "Pre-dumped 1 tasks: ") {
		t.Errorf("pre-dump: status %d, printed %q", code, out)
	}
	out, errOut, code := gock(nil, "pre-dump", "-t", pid, "-D", filepath.Join(imgs, "pre2"))
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "Pre-dumped 1 tasks: ") {
		t.Errorf("pre-dump with stderr on a pipe: status %d, stdout %q, stderr %q; want no progress", code, out, errOut)
	}

	final := filepath.Join(imgs, "final")
	out, term, code = gock(testproc.OpenPty(t), "dump", "-t", pid, "-D", final, "--display-stats")
	onTerminal("dump", term, "Dumping")
	// --display-stats keeps CRIU's format, on stdout.
	if code != 0 || !strings.HasPrefix(out, "Dumped 1 tasks, 1 threads, ") || !strings.Contains(out, "\nDisplaying dump stats:\nFreezing time: ") {
		t.Fatalf("dump: status %d, printed %q", code, out)
	}
	p.Cmd.Wait()
	os.WriteFile(goFile, nil, 0o600)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	out, term, code = gock(testproc.OpenPty(t), "restore", "-D", final, "--display-stats")
	onTerminal("restore", term, "Restoring")
	if code != 7 || !strings.HasPrefix(out, "Displaying restore stats:\nPages restored: ") {
		t.Errorf("restore: status %d (want the restored task's 7), printed %q", code, out)
	}

	// The same dump and restore with stderr on a pipe: nothing on it.
	os.Remove(goFile)
	os.Remove(filepath.Join(dir, "ready"))
	p = testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	again := filepath.Join(imgs, "again")
	out, errOut, code = gock(nil, "dump", "-t", fmt.Sprint(p.Pid), "-D", again)
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "Dumped 1 tasks") {
		t.Fatalf("dump with stderr on a pipe: status %d, stdout %q, stderr %q; want no progress", code, out, errOut)
	}
	p.Cmd.Wait()
	os.WriteFile(goFile, nil, 0o600)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	out, errOut, code = gock(nil, "restore", "-D", again)
	if code != 7 || errOut != "" || out != "" {
		t.Errorf("restore with stderr on a pipe: status %d, stdout %q, stderr %q; want 7 and nothing printed", code, out, errOut)
	}
}
