package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/testproc"
)

// TestFileLocksCLI: a tree holding a POSIX lock is refused without
// --file-locks, with the words a user reads; with it the lock is dumped,
// a restore without it is refused, a restore meeting a conflicting lock
// fails naming the file, the lock and its holder and leaves nothing
// behind, and once that lock is gone the restore brings the lock back.
func TestFileLocksCLI(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dump and restore need root")
	}
	bin := testproc.BuildC(t, "../../internal/dump/testdata/holdfd.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir, "posix-lock")
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	comm := strings.TrimSpace(readFile(t, fmt.Sprintf("/proc/%d/comm", p.Pid)))
	locked := filepath.Join(dir, "locked")
	imgs := filepath.Join(t.TempDir(), "img")

	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs}, &out, &errOut); code != 1 {
		t.Fatalf("dump without --file-locks: exit %d: %s", code, errOut.String())
	}
	want := fmt.Sprintf("Error: task %d (%s) fd 3: %s: a POSIX write lock on bytes 2-5: gockpt dumps file locks only with --file-locks; release the lock before dumping, or dump and restore with --file-locks\n(see %s/dump.log)\n", p.Pid, comm, locked, imgs)
	if errOut.String() != want {
		t.Fatalf("stderr\n %q\nwant\n %q", errOut.String(), want)
	}

	errOut.Reset()
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs, "--file-locks"}, &out, &errOut); code != 0 {
		t.Fatalf("dump --file-locks: exit %d: %s", code, errOut.String())
	}
	p.Cmd.Wait()

	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d"}, &out, &errOut); code != 1 {
		t.Fatalf("restore without --file-locks: exit %d: %s", code, errOut.String())
	}
	want = fmt.Sprintf("Error: the images hold a file lock (filelocks.img; task %d fd 3 holds a POSIX write lock on bytes 2-5 on %s): restore with --file-locks to take them again\n(see %s/restore.log)\n", p.Pid, locked, imgs)
	if errOut.String() != want {
		t.Fatalf("stderr\n %q\nwant\n %q", errOut.String(), want)
	}

	// Someone else takes bytes 3-3 meanwhile: the restore must fail.
	f, err := os.OpenFile(locked, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_RDLCK, Start: 3, Len: 1}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d", "--file-locks"}, &out, &errOut); code != 1 {
		testproc.KillTree(p.Pid)
		t.Fatalf("restore over a conflicting lock: exit %d: %s", code, errOut.String())
	}
	me := strings.TrimSpace(readFile(t, "/proc/self/comm"))
	want = fmt.Sprintf("Error: task %d fd 3: %s: a POSIX write lock on bytes 2-5: cannot be taken again: process %d (%s) holds a conflicting lock on the file; release it and restore again (task %d thread %d: fcntl(3, F_SETLK): resource temporarily unavailable)", p.Pid, locked, os.Getpid(), me, p.Pid, p.Pid)
	if got := strings.SplitN(errOut.String(), "\n", 2)[0]; got != want {
		t.Fatalf("stderr\n %q\nwant\n %q", got, want)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.Pid)); err == nil {
		t.Fatalf("task %d left behind by a failed restore", p.Pid)
	}

	// Once the other lock is gone, the lock comes back, held by the task.
	lk.Type = unix.F_UNLCK
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d", "--file-locks"}, &out, &errOut); code != 0 {
		t.Fatalf("restore --file-locks: exit %d: %s", code, errOut.String())
	}
	defer func() {
		syscall.Kill(p.Pid, syscall.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(p.Pid, &ws, 0, nil)
	}()
	probe := unix.Flock_t{Type: unix.F_RDLCK, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &probe); err != nil {
		t.Fatal(err)
	}
	if probe.Type != unix.F_WRLCK || probe.Pid != int32(p.Pid) || probe.Start != 2 || probe.Len != 4 {
		t.Fatalf("after restore F_GETLK says %+v, want task %d's write lock on bytes 2-5", probe, p.Pid)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
