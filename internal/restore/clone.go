package restore

import (
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/pidctl"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// clone creates a child of parent with the given PID (pidctl.ThreadFlags
// make it a thread), stopped before it runs its first instruction.
func (rs *restorer) clone(parent *remote, flags, exitSignal uint64, pid int) (*ptrace.Tracee, error) {
	method := pidctl.Auto
	if rs.opts.UseNsLastPid {
		method = pidctl.NsLastPid
	}
	child, err := pidctl.Clone(pidctl.FromTracee(parent.te, rs.area.syscallAddr), pidctl.Request{
		PID: pid, Flags: flags, ExitSignal: exitSignal, Scratch: rs.area.cloneScratch, Method: method,
	})
	if err != nil {
		return nil, err
	}
	tgid := child.Tid
	if flags&unix.CLONE_THREAD != 0 {
		tgid = parent.te.Tgid
	}
	te := rs.tracer.AdoptIn(child.Tid, tgid)
	te.UseSyscallAt(rs.area.syscallAddr)
	return te, nil
}
