package kcmp

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSetFiles: fds of this process on the same open file description are
// found, others are not, whatever the order they were added in.
func TestSetFiles(t *testing.T) {
	pid := os.Getpid()
	var fds []int
	for i := 0; i < 64; i++ {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	s := &Set[int]{Type: File}
	for i, fd := range fds[:32] {
		if _, ok := s.Find(pid, uintptr(fd)); ok {
			t.Fatalf("fd %d found before it was added", fd)
		}
		s.Add(pid, uintptr(fd), i)
	}
	if s.Len() != 32 {
		t.Fatalf("Len %d, want 32", s.Len())
	}
	for i, fd := range fds[:32] {
		d, err := unix.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := s.Find(pid, uintptr(d))
		unix.Close(d)
		if !ok || v != i {
			t.Errorf("dup of fd %d: %d, %v; want %d", fd, v, ok, i)
		}
	}
	for _, fd := range fds[32:] {
		if v, ok := s.Find(pid, uintptr(fd)); ok {
			t.Errorf("fd %d (its own open) found as %d", fd, v)
		}
	}
	if s.unordered {
		t.Error("kcmp gave no order on this kernel")
	}
}

// TestSetTasks: the per-task types find this process's own objects.
func TestSetTasks(t *testing.T) {
	pid := os.Getpid()
	for _, typ := range []int{VM, Files, FS, Sighand} {
		s := &Set[string]{Type: typ}
		s.Add(1, 0, "init")
		s.Add(pid, 0, "self")
		if v, ok := s.Find(pid, 0); !ok || v != "self" {
			t.Errorf("type %d: %q, %v", typ, v, ok)
		}
	}
}

// TestFindOrAdd: a dup finds the value its original was given, a new
// open gets mk's value, and mk runs only for those.
func TestFindOrAdd(t *testing.T) {
	pid := os.Getpid()
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for i := 0; i < 40; i++ {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	s := &Set[int]{Type: File}
	next := 0
	mk := func() int { next++; return next }
	for i, fd := range fds {
		if v, seen := s.FindOrAdd(pid, uintptr(fd), mk); seen || v != i+1 {
			t.Fatalf("fd %d: %d, %v; want %d, new", fd, v, seen, i+1)
		}
	}
	for i, fd := range fds {
		d, err := unix.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, d)
		if v, seen := s.FindOrAdd(pid, uintptr(d), mk); !seen || v != i+1 {
			t.Errorf("dup of fd %d: %d, %v; want %d, seen", fd, v, seen, i+1)
		}
	}
	if next != 40 || s.Len() != 40 {
		t.Errorf("mk ran %d times, set holds %d; want 40 and 40", next, s.Len())
	}
	// Found by Find too: FindOrAdd kept the order.
	for i, fd := range fds[:40] {
		if v, ok := s.Find(pid, uintptr(fd)); !ok || v != i+1 {
			t.Errorf("Find fd %d: %d, %v", fd, v, ok)
		}
	}
}
