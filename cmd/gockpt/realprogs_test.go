package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/testproc"
)

// Real programs from Debian, dumped and restored end to end: each test
// checks that the program still does its job afterwards.

// program is the path of a Debian program; the test is skipped without it.
func program(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed", name)
	}
	return p
}

// pollUntil calls cond until it returns true, failing the test with what
// describes the last state once the deadline passes.
func pollUntil(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	var last string
	for end := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", timeout, last)
		}
	}
}

// waitPidsFree waits until no process has these PIDs: the dumped tree's
// orphans are reaped by PID 1, which is late here (up to ~2 s).
func waitPidsFree(t *testing.T, pids []int) {
	t.Helper()
	pollUntil(t, 10*time.Second, func() (bool, string) {
		for _, pid := range pids {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				return false, fmt.Sprintf("PID %d of the dumped tree is still taken", pid)
			}
		}
		return true, ""
	})
}

// killRestored kills a restored tree by PID and reaps its root when it is
// this process's child (restore -d runs in the test process).
func killRestored(pid int) {
	testproc.KillTree(pid)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
}

// syscallOf is the number of the syscall pid waits in, -1 when it is
// running or gone.
func syscallOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	if err != nil {
		return -1
	}
	return n
}

// gockpt runs a gockpt command in this process and fails the test unless
// it exits 0.
func gockpt(t *testing.T, args ...string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("gockpt %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
	}
}

// TestRealTailF: `tail -f` (inotify) follows a file; after dump and
// restore -d the restored tail prints a line appended afterwards.
func TestRealTailF(t *testing.T) {
	tail := program(t, "tail")
	dir := t.TempDir()
	watched := filepath.Join(dir, "watched")
	outPath, errPath := filepath.Join(dir, "out"), filepath.Join(dir, "err")
	if err := os.WriteFile(watched, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(errPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := testproc.Command(tail, "-f", watched) // its own session, stdin /dev/null
	cmd.Stdout, cmd.Stderr = stdout, stderr
	p := testproc.StartCmd(t, cmd)
	stdout.Close()
	stderr.Close()
	t.Cleanup(func() { killRestored(p.Pid) })

	appendLine := func(s string) {
		t.Helper()
		f, err := os.OpenFile(watched, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	printed := func(want string) func() (bool, string) {
		return func() (bool, string) {
			out, _ := os.ReadFile(outPath)
			errs, _ := os.ReadFile(errPath)
			return string(out) == want, fmt.Sprintf("tail printed %q (stderr %q), want %q", out, errs, want)
		}
	}
	appendLine("first")
	pollUntil(t, 5*time.Second, printed("first\n"))
	// Dump once tail waits in poll(2) on its inotify fd again: an event it
	// has not read yet would be refused.
	pollUntil(t, 5*time.Second, func() (bool, string) {
		return syscallOf(p.Pid) == unix.SYS_POLL, "tail never waited in poll"
	})

	imgs := filepath.Join(t.TempDir(), "img")
	gockpt(t, "dump", "-t", strconv.Itoa(p.Pid), "-D", imgs)
	p.Cmd.Wait()
	waitPidsFree(t, []int{p.Pid})
	gockpt(t, "restore", "-D", imgs, "-d")
	appendLine("second")
	pollUntil(t, 5*time.Second, printed("first\nsecond\n"))
	if !testproc.Alive(p.Pid) {
		t.Fatalf("the restored tail %d is gone", p.Pid)
	}
}

// TestRealSqliteExclusive: sqlite3, the foreground job of a shell on a
// terminal, holds `BEGIN EXCLUSIVE` (POSIX locks on the database) with a
// row inserted in the transaction. It is dumped with --shell-job
// --file-locks and restored the same way by the shell on the same
// terminal: another sqlite3 then finds the database locked, and once
// COMMIT is typed into the terminal it sees every row.
func TestRealSqliteExclusive(t *testing.T) {
	sqlite := program(t, "sqlite3")
	shell := testproc.BuildC(t, "testdata/fgshell.c")
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	imgs := filepath.Join(t.TempDir(), "img")
	env := append(os.Environ(), "HOME="+dir, "TERM=dumb", "INPUTRC=/dev/null") // no ~/.sqliterc, no history

	master, slavePath := ptyPair(t)
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	cmd := exec.Command(shell, dir, sqlite, db, "--",
		self, "restore", "-D", imgs, "--shell-job", "--file-locks", "-v4", "-o", "restore.log")
	cmd.Env = append(env, "GOCKPT_TEST_AS_GOCKPT=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	job := 0
	t.Cleanup(func() {
		if job != 0 {
			syscall.Kill(job, syscall.SIGKILL)
		}
		testproc.KillTree(cmd.Process.Pid)
		if cmd.ProcessState == nil {
			cmd.Wait()
		}
	})
	out := readTerminal(master)
	typeIn := func(s string) {
		t.Helper()
		if _, err := master.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	// Each query's answer is text its echo does not contain.
	typeIn("CREATE TABLE t(x);\nINSERT INTO t VALUES('alpha'),('beta');\n" +
		"BEGIN EXCLUSIVE;\nINSERT INTO t VALUES('gamma');\nSELECT 'locked-'||count(*) FROM t;\n")
	out.waitFor(t, "locked-3")
	testproc.WaitFile(t, filepath.Join(dir, "job"), 10*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "job"))
	job, _ = strconv.Atoi(strings.TrimSpace(string(b)))

	// Another sqlite3, outside the terminal: stdout, stderr and exit status.
	other := func() (string, string, int) {
		t.Helper()
		c := exec.Command(sqlite, "-cmd", ".timeout 100", db, "select * from t")
		c.Env = env
		var o, e bytes.Buffer
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return o.String(), e.String(), c.ProcessState.ExitCode()
	}
	const locked = "Error: in prepare, database is locked (5)\n"
	if o, e, code := other(); code != 5 || o != "" || e != locked {
		t.Fatalf("before dump, another sqlite3 exited %d with stdout %q, stderr %q; want 5, nothing and %q", code, o, e, locked)
	}

	gockpt(t, "dump", "-t", strconv.Itoa(job), "-D", imgs, "--shell-job", "--file-locks")
	out.waitFor(t, "job ended (0x9)")
	// The shell restores the job; once it runs again (no tracer, waiting
	// in a syscall: readline's pselect) it answers what is typed.
	pollUntil(t, 10*time.Second, func() (bool, string) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", job))
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", job))
		log, _ := os.ReadFile(filepath.Join(imgs, "restore.log"))
		return string(comm) == "sqlite3\n" && bytes.Contains(status, []byte("\nTracerPid:\t0\n")) && syscallOf(job) >= 0,
			fmt.Sprintf("sqlite3 %d not restored; terminal %q; restore.log:\n%s", job, out.String(), log)
	})
	typeIn("SELECT 'back-'||(40+2);\n")
	out.waitFor(t, "back-42")
	if o, e, code := other(); code != 5 || o != "" || e != locked {
		t.Fatalf("after restore, another sqlite3 exited %d with stdout %q, stderr %q; want 5, nothing and %q", code, o, e, locked)
	}
	typeIn("COMMIT;\nSELECT 'done-'||(1+1);\n")
	out.waitFor(t, "done-2")
	if o, e, code := other(); code != 0 || o != "alpha\nbeta\ngamma\n" || e != "" {
		t.Fatalf("after COMMIT, another sqlite3 exited %d with stdout %q, stderr %q; want 0 and the three rows", code, o, e)
	}
	typeIn(".quit\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the shell (restore, then sqlite3's .quit) ended with %v; terminal %q", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the restored sqlite3 did not end on .quit; terminal %q", out.String())
	}
}

// TestRealTmux: a tmux server (on its own socket, no client attached)
// with two windows running shells is dumped (server and shells), killed
// and restored -d: a new client lists both windows, and each window's
// shell runs what send-keys types. With job control the shells hold
// /dev/tty (their controlling terminal, a pair whose master the server
// holds); without it (sh +m) they hold only the pair's slave.
func TestRealTmux(t *testing.T) {
	tmuxBin := program(t, "tmux")
	for _, c := range []struct {
		name    string
		command []string // what each window runs; none: the default shell
	}{
		{"job-control", nil},
		{"no-job-control", []string{"sh +m"}},
	} {
		t.Run(c.name, func(t *testing.T) { testTmux(t, tmuxBin, c.command) })
	}
}

func testTmux(t *testing.T, tmuxBin string, command []string) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sock")
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "TMUX=") && !strings.HasPrefix(e, "ENV=") && !strings.HasPrefix(e, "SHELL=") && !strings.HasPrefix(e, "HOME=") {
			env = append(env, e)
		}
	}
	env = append(env, "SHELL=/bin/sh", "HOME="+dir) // no user rc files
	tmux := func(args ...string) (string, error) {
		c := exec.Command(tmuxBin, append([]string{"-S", sock, "-f", "/dev/null"}, args...)...)
		c.Env = env
		b, err := c.CombinedOutput()
		return string(b), err
	}
	mustTmux := func(args ...string) string {
		t.Helper()
		o, err := tmux(args...)
		if err != nil {
			t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, o)
		}
		return o
	}
	server := 0
	t.Cleanup(func() {
		tmux("kill-server")
		if server != 0 {
			killRestored(server)
		}
	})
	mustTmux(append([]string{"new-session", "-d", "-s", "t"}, command...)...)
	pid := strings.TrimSpace(mustTmux("display", "-p", "#{pid}"))
	server, _ = strconv.Atoi(pid)
	mustTmux(append([]string{"new-window", "-t", "t:"}, command...)...) // "t" alone may name a window "tmux..."

	// Dump once both shells have shown their prompt and the server has
	// read it (data waiting in a pair's buffers is refused).
	ready := func(window string) func() (bool, string) {
		return func() (bool, string) {
			o, _ := tmux("capture-pane", "-p", "-t", "t:"+window)
			o = strings.TrimSpace(o)
			return strings.HasPrefix(o, "#") || strings.HasPrefix(o, "$"), fmt.Sprintf("window %s shows %q, no prompt", window, o)
		}
	}
	pollUntil(t, 5*time.Second, ready("0"))
	pollUntil(t, 5*time.Second, ready("1"))
	tree := append([]int{server}, testproc.Descendants(server)...)
	imgs := filepath.Join(t.TempDir(), "img")
	gockpt(t, "dump", "-t", pid, "-D", imgs)
	waitPidsFree(t, tree)
	if _, err := tmux("list-windows"); err == nil {
		t.Fatal("tmux still answers after the dump killed its server")
	}
	gockpt(t, "restore", "-D", imgs, "-d")

	if o := mustTmux("list-windows", "-t", "t", "-F", "#{window_index}"); o != "0\n1\n" {
		t.Fatalf("list-windows after restore: %q, want windows 0 and 1", o)
	}
	for _, w := range []string{"1", "0"} {
		mustTmux("send-keys", "-t", "t:"+w, "echo hello-$((6*7))", "Enter")
		pollUntil(t, 5*time.Second, func() (bool, string) {
			o, _ := tmux("capture-pane", "-p", "-t", "t:"+w)
			for _, l := range strings.Split(o, "\n") {
				if l == "hello-42" {
					return true, ""
				}
			}
			return false, fmt.Sprintf("window %s shows %q, no hello-42", w, o)
		})
	}
}

// String is everything the terminal showed so far.
func (o *termOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}
