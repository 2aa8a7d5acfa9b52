package files

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/par"
	"github.com/gockpt/gockpt/internal/proc"
)

// fdDir reads the fds of one task through its /proc/PID/fd and
// /proc/PID/fdinfo directories, opened once: a task with thousands of fds
// then costs no walk of /proc/PID for each of them.
type fdDir struct {
	pid       int
	fds, info int
}

func openFdDir(pid int) (*fdDir, error) {
	d := &fdDir{pid: pid, fds: -1, info: -1}
	var err error
	if d.fds, err = unix.Open(proc.Path(pid, "fd"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, &os.PathError{Op: "open", Path: proc.Path(pid, "fd"), Err: err})
	}
	if d.info, err = unix.Open(proc.Path(pid, "fdinfo"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		unix.Close(d.fds)
		return nil, fmt.Errorf("task %d: %w", pid, &os.PathError{Op: "open", Path: proc.Path(pid, "fdinfo"), Err: err})
	}
	return d, nil
}

func (d *fdDir) Close() {
	unix.Close(d.fds)
	unix.Close(d.info)
}

// read is what /proc tells of fd: the link's text, the file's stat and
// the fd's fdinfo. A closed fd gives an error that is os.ErrNotExist.
func (d *fdDir) read(fd int) (*fdState, error) {
	name := strconv.Itoa(fd)
	s := &fdState{pid: d.pid, fd: fd, link: fmt.Sprintf("/proc/%d/fd/%d", d.pid, fd)}
	target, err := readlinkAt(d.fds, name)
	if err != nil {
		return nil, fmt.Errorf("task %d fd %d: %w", d.pid, fd, &os.PathError{Op: "readlink", Path: s.link, Err: err})
	}
	s.target = target
	if err := unix.Fstatat(d.fds, name, &s.st, 0); err != nil {
		return nil, fmt.Errorf("task %d fd %d (%s): %w", d.pid, fd, s.target, &os.PathError{Op: "stat", Path: s.link, Err: err})
	}
	if s.info, err = proc.ReadFdinfoAt(d.info, d.pid, fd); err != nil {
		return nil, fmt.Errorf("task %d fd %d (%s): %w", d.pid, fd, s.target, err)
	}
	return s, nil
}

// readlinkAt reads a link of any length, as os.Readlink does.
func readlinkAt(dir int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		got, err := unix.Readlinkat(dir, name, b)
		if err != nil {
			return "", err
		}
		if got < n {
			return string(b[:got]), nil
		}
	}
}

// fdReadChunk is how many fds' states are read before they are handed
// on: reading runs one chunk ahead of the caller, and a task with a
// million fds does not hold a million states at once.
const fdReadChunk = 256

// fdReadWorkers read one chunk's states at once; the reads are /proc
// syscalls that each take a few microseconds of kernel time.
const fdReadWorkers = 2

// eachFdState reads the state of each of fds of task pid, several at a
// time and ahead of f, and hands them to f in order, each with the error
// reading it gave. It stops at the first error f returns.
func eachFdState(pid int, fds []int, f func(fd int, s *fdState, err error) error) error {
	dir, err := openFdDir(pid)
	if err != nil {
		return err
	}
	defer dir.Close()
	type result struct {
		s   *fdState
		err error
	}
	res := make([]result, len(fds))
	read := func(i int) { res[i].s, res[i].err = dir.read(fds[i]) }
	if len(fds) <= fdReadChunk/8 {
		// Too few for goroutines to pay.
		for i, fd := range fds {
			read(i)
			if err := f(fd, res[i].s, res[i].err); err != nil {
				return err
			}
		}
		return nil
	}
	chunks := (len(fds) + fdReadChunk - 1) / fdReadChunk
	ahead := par.NewAhead(chunks, 1, func(c int) {
		lo := c * fdReadChunk
		hi := min(lo+fdReadChunk, len(fds))
		par.Each(hi-lo, fdReadWorkers, func(i int) { read(lo + i) })
	})
	defer ahead.Stop()
	for c := range chunks {
		ahead.Wait(c)
		for i := c * fdReadChunk; i < min((c+1)*fdReadChunk, len(fds)); i++ {
			err := f(fds[i], res[i].s, res[i].err)
			res[i] = result{}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
