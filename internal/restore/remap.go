package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// takeFile gives the task its own close-on-exec fd on gockpt's open file
// f: a deleted object gockpt recreated (a ghost), which the task cannot
// open by name.
func takeFile(r *remote, f *os.File, what string) (uint64, error) {
	pfd, err := r.call("pidfd_open(gockpt)", sysPidfdOpen, uint64(os.Getpid()), 0)
	if err != nil {
		return 0, err
	}
	defer r.call("close", unix.SYS_CLOSE, pfd)
	return r.call("pidfd_getfd for "+what, sysPidfdGetfd, pfd, uint64(f.Fd()), 0)
}

// remappedDir enters, inside the task, the deleted directory of file entry
// id (its working directory or root, recreated from its ghost): fchdir to
// an fd on it. It reports false when the entry is an ordinary path.
func (rs *restorer) remappedDir(t *Task, r *remote, id uint32, what string) (bool, error) {
	if !rs.opener.Remapped(id) {
		return false, nil
	}
	f, err := rs.opener.Open(id)
	if err != nil {
		return true, fmt.Errorf("task %d: %s: %w", t.Pid, what, err)
	}
	fd, err := takeFile(r, f, what)
	if err != nil {
		return true, err
	}
	defer r.call("close", unix.SYS_CLOSE, fd)
	if _, err := r.call("fchdir to the deleted "+what, unix.SYS_FCHDIR, fd); err != nil {
		return true, err
	}
	return true, nil
}
