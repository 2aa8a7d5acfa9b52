package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Paths in the images are as the dumper saw them, from its own root. A
// task restored inside a chroot (or cloned from a chrooted parent) would
// resolve them from its root instead; so gockpt opens the file and the
// task takes the open file with pidfd_getfd.

// openHost opens name (from gockpt's root) with flags and queues its copy
// into task r, close-on-exec; the op's result is the task's fd.
func (rs *restorer) openHost(r *remote, what, name string, flags int) (op, error) {
	fd, err := unix.Open(name, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("task %d: open %s %s: %w", r.pid, what, name, err)
	}
	r.closeAfterRun(fd)
	return takeFd(r, fd)
}

// takeFd queues the copy of gockpt's fd into task r (pidfd_getfd: the same
// open file description, close-on-exec); the op's result is the task's fd
// number. gockpt's fd must stay open until the list has run.
func takeFd(r *remote, fd int) (op, error) {
	pfd, err := r.qop("pidfd_open(gockpt)", sysPidfdOpen, val(uint64(os.Getpid())), val(0))
	if err != nil {
		return 0, err
	}
	got, err := r.qop(fmt.Sprintf("pidfd_getfd(gockpt fd %d)", fd), sysPidfdGetfd, pfd.res(), val(uint64(fd)), val(0))
	if err != nil {
		return 0, err
	}
	r.qopMayFail("close pidfd", unix.SYS_CLOSE, pfd.res())
	return got, nil
}

// enterDir makes the task's cwd the directory name of gockpt's view
// (fchdir on a taken fd), and with chroot set, its root too.
func (rs *restorer) enterDir(r *remote, what, name string, chroot bool) error {
	verb := "chdir"
	if chroot {
		verb = "chroot"
	}
	hfd, err := unix.Open(name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("task %d: %s %s: %w", r.pid, verb, name, err)
	}
	r.closeAfterRun(hfd)
	fd, err := takeFd(r, hfd)
	if err != nil {
		return err
	}
	if _, err := r.qop(fmt.Sprintf("fchdir(%s %s)", what, name), unix.SYS_FCHDIR, fd.res()); err != nil {
		return err
	}
	r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
	if !chroot {
		return nil
	}
	dot, err := r.str(".")
	if err != nil {
		return err
	}
	return r.q("chroot "+name, unix.SYS_CHROOT, dot)
}
