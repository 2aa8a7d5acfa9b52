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

// openHost opens name (from gockpt's root) with flags and puts the open
// file into task r, close-on-exec; it returns the task's fd.
func (rs *restorer) openHost(r *remote, what, name string, flags int) (uint64, error) {
	fd, err := unix.Open(name, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("task %d: open %s %s: %w", r.pid, what, name, err)
	}
	defer unix.Close(fd)
	return takeFd(r, fd)
}

// takeFd copies gockpt's fd into task r (pidfd_getfd: the same open file
// description, close-on-exec) and returns the task's fd number.
func takeFd(r *remote, fd int) (uint64, error) {
	pfd, err := r.call("pidfd_open(gockpt)", sysPidfdOpen, uint64(os.Getpid()), 0)
	if err != nil {
		return 0, err
	}
	defer r.call("close pidfd", unix.SYS_CLOSE, pfd)
	return r.call(fmt.Sprintf("pidfd_getfd(gockpt fd %d)", fd), sysPidfdGetfd, pfd, uint64(fd), 0)
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
	defer unix.Close(hfd)
	fd, err := takeFd(r, hfd)
	if err != nil {
		return err
	}
	defer r.call("close", unix.SYS_CLOSE, fd)
	if _, err := r.call(fmt.Sprintf("fchdir(%s %s)", what, name), unix.SYS_FCHDIR, fd); err != nil {
		return err
	}
	if !chroot {
		return nil
	}
	dot, err := r.str(".")
	if err != nil {
		return err
	}
	_, err = r.call("chroot "+name, unix.SYS_CHROOT, dot)
	return err
}
