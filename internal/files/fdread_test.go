package files

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/proc"
)

// TestEachFdState: every fd comes in the order asked, with what /proc
// says of it one at a time, over several chunks; a closed fd comes with
// an error that is os.ErrNotExist; f's error stops the walk.
func TestEachFdState(t *testing.T) {
	pid := os.Getpid()
	dir := t.TempDir()
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for i := 0; i < 3*fdReadChunk+17; i++ {
		path := "/dev/null"
		if i%50 == 0 {
			path = fmt.Sprintf("%s/f%d", dir, i)
		}
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			unix.Seek(fd, int64(i), 0)
		}
		fds = append(fds, fd)
	}
	closedFd := fds[len(fds)-1] + 1000
	ask := append(append([]int{}, fds...), closedFd)
	var got []int
	err := eachFdState(pid, ask, func(fd int, s *fdState, err error) error {
		got = append(got, fd)
		if fd == closedFd {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("closed fd %d: %v, want not-exist", fd, err)
			}
			return nil
		}
		if err != nil {
			t.Fatalf("fd %d: %v", fd, err)
		}
		link := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
		target, _ := os.Readlink(link)
		var st unix.Stat_t
		unix.Stat(link, &st)
		info, _ := proc.ReadFdinfo(pid, fd)
		if s.fd != fd || s.pid != pid || s.link != link || s.target != target || s.st.Ino != st.Ino || s.st.Rdev != st.Rdev ||
			s.info.Pos != info.Pos || s.info.Flags != info.Flags || s.info.MntID != info.MntID {
			t.Errorf("fd %d: %+v %+v, want %s %+v", fd, s, s.info, target, info)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ask) {
		t.Fatalf("%d fds handed on, want %d", len(got), len(ask))
	}
	for i := range ask {
		if got[i] != ask[i] {
			t.Fatalf("fd %d handed on at %d, want %d", got[i], i, ask[i])
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := eachFdState(pid, fds, func(int, *fdState, error) error {
		if n++; n == fdReadChunk+3 {
			return stop
		}
		return nil
	}); err != stop || n != fdReadChunk+3 {
		t.Errorf("stopped with %v after %d fds, want stop after %d", err, n, fdReadChunk+3)
	}
}

// TestReadlinkAt: a link longer than the first buffer reads whole.
func TestReadlinkAt(t *testing.T) {
	dir := t.TempDir()
	long := "/"
	for len(long) < 700 {
		long += "abcdefghij/"
	}
	if err := os.Symlink(long, dir+"/l"); err != nil {
		t.Fatal(err)
	}
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(d)
	if got, err := readlinkAt(d, "l"); err != nil || got != long {
		t.Errorf("readlinkAt: %q, %v", got, err)
	}
}
