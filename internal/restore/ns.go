package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The dump records a UTS namespace other than its own in utsns-ID.img; a
// task's ids say which one it was in. A task is cloned into a new one when
// it is the first of its namespace; a later task of the same namespace
// that is not a child of it joins it with setns; a task back in gockpt's own
// (no image) joins that.

// needsNewUTS tells whether t must be cloned with CLONE_NEWUTS.
func (rs *restorer) needsNewUTS(t *Task) bool {
	id := t.IDs.GetUtsNsId()
	if rs.plan.UTS[id] == nil || rs.utsMade[id] != 0 {
		return false
	}
	return t.Parent == nil || t.Parent.IDs.GetUtsNsId() != id
}

// utsNamespace puts the new task in its UTS namespace, named as it was.
func (rs *restorer) utsNamespace(l *live, made bool) error {
	t, r := l.t, l.main
	id := t.IDs.GetUtsNsId()
	if made {
		rs.utsMade[id] = t.Pid
		e := rs.plan.UTS[id]
		for _, n := range []struct {
			name string
			nr   uintptr
			val  string
		}{{"sethostname", unix.SYS_SETHOSTNAME, e.GetNodename()}, {"setdomainname", unix.SYS_SETDOMAINNAME, e.GetDomainname()}} {
			p, err := r.put([]byte(n.val))
			if err != nil {
				return err
			}
			if _, err := r.call(fmt.Sprintf("%s(%q)", n.name, n.val), n.nr, p, uint64(len(n.val))); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Parent != nil && t.Parent.IDs.GetUtsNsId() == id {
		return nil // inherited
	}
	owner := os.Getpid() // gockpt's own namespace
	if rs.plan.UTS[id] != nil {
		owner = rs.utsMade[id]
	} else if t.Parent == nil {
		return nil // the root was in gockpt's, as it is now
	}
	p, err := r.str(fmt.Sprintf("/proc/%d/ns/uts", owner))
	if err != nil {
		return err
	}
	fd, err := r.call("open uts namespace", unix.SYS_OPENAT, uint64(unix.AT_FDCWD&0xffffffff)|0xffffffff00000000, p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer r.call("close", unix.SYS_CLOSE, fd)
	_, err = r.call("setns(uts)", unix.SYS_SETNS, fd, unix.CLONE_NEWUTS)
	return err
}
