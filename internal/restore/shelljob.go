package restore

import (
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
