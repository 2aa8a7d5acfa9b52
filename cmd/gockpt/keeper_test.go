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

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/keeper"
	"github.com/gockpt/gockpt/internal/proc"
)

// TestKeeperCmd runs the real mem-keeper command as keeper.Start does in
// pre-dump: commit a uffd, take it back, release.
func TestKeeperCmd(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "keeper.log")
	addr, pid, err := keeper.Start(keeperArgs(), logPath)
	if err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL) // not reaped yet: it just said it was ready
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		waitGone(t, pidfd, pid)
		unix.Close(pidfd)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("keeper log:\n%s", b)
		}
	})

	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sleeper.Process.Kill()
		sleeper.Wait()
	})
	st, err := proc.ReadStat(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	uffd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|1, 0, 0)
	if errno != 0 {
		t.Skipf("userfaultfd: %v", errno)
	}
	defer unix.Close(int(uffd))

	c, err := keeper.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	entry := keeper.Entry{Pid: sleeper.Process.Pid, StartTime: st.StartTime, Fd: int(uffd)}
	if err := c.Commit(&keeper.State{Generation: "g1", Entries: []keeper.Entry{entry}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Take()
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Generation != "g1" || len(got.Entries) != 1 || got.Entries[0].Pid != entry.Pid {
		t.Fatalf("take = %+v, want g1 with task %d", got, entry.Pid)
	}
	if link, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", got.Entries[0].Fd)); link != "anon_inode:[userfaultfd]" {
		t.Errorf("took %q, want a userfaultfd", link)
	}
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pidfd, pid)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("released by client pid")) {
		t.Errorf("keeper log lacks the release:\n%s", b)
	}
}

// waitGone waits until the keeper has exited and keeper.Start's goroutine
// has reaped it, so that no child is left for assertNoChildren.
func waitGone(t *testing.T, pidfd, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return
		}
		unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 20)
	}
	t.Errorf("keeper %d still there 5s after it should have exited", pid)
}

func TestKeeperCmdNeedsAddr(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{keeperCmd, "--no-default-config"}, &stdout, &stderr)
	if want := "Error: required flag(s) \"addr\" not set\nRun 'gockpt mem-keeper --help' for usage.\n"; code != 1 || stderr.String() != want {
		t.Errorf("mem-keeper without --addr: status %d, stderr %q; want 1, %q", code, stderr.String(), want)
	}
}

func TestKeeperCmdHidden(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help: status %d: %s", code, stderr.String())
	}
	if strings.Contains(stdout.String(), keeperCmd) {
		t.Errorf("--help lists the hidden %s command", keeperCmd)
	}
}
