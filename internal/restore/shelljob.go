package restore

import (
	"encoding/binary"
	"fmt"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/log"
)

// joinShell moves a shell job into restore's session, as CRIU's
// --shell-job does: the session the job ran in (led outside the tree) is
// restore's now, and so is its process group unless the job's root led
// its own. A task of the tree whose PID, session or group is restore's
// own would make the two ambiguous: refused.
func (p *Plan) joinShell() error {
	root := p.Root
	remap := func(what string, old, cur int, set func(t *Task, from, to int)) error {
		if old == cur {
			return nil
		}
		for _, t := range p.Tasks {
			if t.Pid == cur || t.Sid == cur || t.Pgid == cur {
				return fmt.Errorf("--shell-job: restore's %s %d is also a PID, session or process group of task %d in the images: run restore from another shell", what, cur, t.Pid)
			}
		}
		for _, t := range p.Tasks {
			set(t, old, cur)
		}
		log.Infof("shell job: %s %d becomes restore's %d", what, old, cur)
		return nil
	}
	if root.Sid != root.Pid {
		sid, err := unix.Getsid(0)
		if err != nil {
			return err
		}
		if err := remap("session", root.Sid, sid, func(t *Task, from, to int) {
			if t.Sid == from {
				t.Sid = to
			}
			if t.Pgid == from {
				t.Pgid = to
			}
		}); err != nil {
			return err
		}
	}
	if root.Pgid != root.Pid {
		if err := remap("process group", root.Pgid, unix.Getpgrp(), func(t *Task, from, to int) {
			if t.Pgid == from {
				t.Pgid = to
			}
		}); err != nil {
			return err
		}
	}
	return nil
}

// shellJobForeground gives the terminal back to the job's process group
// when it was the terminal's foreground group at dump, as a shell's fg
// would.
func (rs *restorer) shellJobForeground() error {
	if !rs.opts.ShellJob {
		return nil
	}
	fg := files.ForegroundGroup(rs.plan.Files, rs.plan.Dir)
	root := rs.plan.Root
	if fg == 0 || fg != root.Pgid || root.Pgid != root.Pid {
		return nil
	}
	// gockpt may be a background job of the shell itself: ignore the
	// SIGTTOU the kernel would stop it with.
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, root.Pgid); err != nil {
		return fmt.Errorf("--shell-job: give the terminal to the job's process group %d: %w", root.Pgid, err)
	}
	return nil
}

// takeCtty makes a session leader's pseudo-terminal of the tree its
// controlling terminal again (TIOCSCTTY on a new file of the slave gockpt
// gives it), before its children are made: they inherit it.
func (rs *restorer) takeCtty(t *Task, r *remote) error {
	if t.Sid != t.Pid || t.Zombie {
		return nil
	}
	term, err := rs.opener.TerminalOf(t.Pid)
	if err != nil || term == nil {
		return err
	}
	slave, err := term.Slave()
	if err != nil {
		return fmt.Errorf("/dev/pts/%d: open the slave: %w", term.Index, err)
	}
	defer slave.Close()
	fd, err := takeFd(r, int(slave.Fd()))
	if err != nil {
		return err
	}
	if _, err := r.qop(fmt.Sprintf("ioctl(TIOCSCTTY) on /dev/pts/%d", term.Index), unix.SYS_IOCTL, fd.res(), val(unix.TIOCSCTTY), val(0)); err != nil {
		return err
	}
	r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
	return r.flush()
}

// restoreTerminals gives the foreground of each pseudo-terminal of the
// tree that is a session's controlling terminal to the group that had it
// (TIOCSPGRP, from the session's leader), once every group exists.
func (rs *restorer) restoreTerminals() error {
	for _, term := range rs.opener.Terminals() {
		l := rs.byPid[term.Sid]
		if term.Pgrp == 0 || l == nil || l.t.Zombie {
			continue
		}
		slave, err := term.Slave()
		if err != nil {
			return fmt.Errorf("/dev/pts/%d: open the slave: %w", term.Index, err)
		}
		err = func() error {
			defer slave.Close()
			r := l.main
			r.reset()
			fd, err := takeFd(r, int(slave.Fd()))
			if err != nil {
				return err
			}
			b := make([]byte, 4)
			binary.NativeEndian.PutUint32(b, uint32(term.Pgrp))
			at, err := r.put(b)
			if err != nil {
				return err
			}
			if _, err := r.qop(fmt.Sprintf("ioctl(TIOCSPGRP, %d)", term.Pgrp), unix.SYS_IOCTL, fd.res(), val(unix.TIOCSPGRP), val(at)); err != nil {
				return err
			}
			r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
			return r.flush()
		}()
		if err != nil {
			return fmt.Errorf("task %d: give /dev/pts/%d to process group %d: %w", term.Sid, term.Index, term.Pgrp, err)
		}
	}
	return nil
}
