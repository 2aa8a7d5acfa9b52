package restore

import (
	"fmt"

	"golang.org/x/sys/unix"
)

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
	fd, err := takeFd(r, int(f.Fd()))
	if err != nil {
		return true, err
	}
	if _, err := r.qop("fchdir to the deleted "+what, unix.SYS_FCHDIR, fd.res()); err != nil {
		return true, err
	}
	r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
	return true, nil
}
