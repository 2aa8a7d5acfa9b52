package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// exitTask makes a rebuilt task end the way a dumped zombie had ended: its
// registers are pointed at exit_group or kill(self) and it runs to its end.
// It stays a zombie: its parent is held under ptrace until the restore is
// over and reaps it only then, if it ever does.
func (rs *restorer) exitTask(r *remote, nr uint64, args ...uint64) error {
	regs, err := r.te.GetRegs()
	if err != nil {
		return err
	}
	ptrace.SetSyscall(&regs, rs.area.syscallAddr, nr, args...)
	if err := r.te.SetRegs(&regs); err != nil {
		return err
	}
	if err := r.te.SetSigmask(0); err != nil {
		return err
	}
	if _, err := r.te.RunToExit(); err != nil {
		return fmt.Errorf("task %d: make it a zombie: %w", r.pid, err)
	}
	return nil
}

// flushSigchld dequeues a SIGCHLD that rebuilding zombie children queued to
// their parent (rt_sigtimedwait with a zero timeout; EAGAIN when none).
func (rs *restorer) flushSigchld(r *remote) error {
	set, err := r.u64s(1 << (uint(unix.SIGCHLD) - 1))
	if err != nil {
		return err
	}
	ts, err := r.u64s(0, 0)
	if err != nil {
		return err
	}
	// EAGAIN: none was pending.
	w, err := r.enqueue("rt_sigtimedwait(SIGCHLD)", "", unix.SYS_RT_SIGTIMEDWAIT, true, vals([]uint64{set, 0, ts, 8}))
	if err != nil {
		return err
	}
	return r.checkResult(w, func(ret uint64) error {
		if e := ptrace.Errno(ret); e != 0 && e != unix.EAGAIN {
			return fmt.Errorf("task %d: rt_sigtimedwait(SIGCHLD): %w", r.pid, e)
		}
		return nil
	})
}

// deadTask tells whether core-PID.img says task pid was dead (a zombie) at
// dump. CRIU lists no real thread of a dead task in pstree.img (whatever
// its thread slot held), so a task whose entry lacks its own PID is one only
// if its core says so.
func deadTask(d *images.Dir, pid int) bool {
	c := &pb.CoreEntry{}
	return d.Exists(images.CoreFile(pid)) && d.ReadOne(images.CoreFile(pid), c) == nil && c.GetTc().GetTaskState() == images.TaskDead
}

// creationOrder is the order tasks are made in: every live task first,
// parents before children, then the zombies, group leaders among them
// first. A zombie joins its process group before it exits, so the group
// must exist by then, whoever leads it: a sibling forked after it, a task
// in another branch, or a zombie leader (a dead leader's group lives on
// while it is unreaped). A zombie has no children, so its parent is all it
// needs.
func creationOrder(tasks []*Task) []*Task {
	var live, leaders, members []*Task
	for _, t := range tasks {
		switch {
		case !t.Zombie:
			live = append(live, t)
		case t.Pgid == t.Pid:
			leaders = append(leaders, t)
		default:
			members = append(members, t)
		}
	}
	return append(append(live, leaders...), members...)
}
