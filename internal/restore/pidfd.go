package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// A pidfd of a process reaped before the dump refers to nothing that can
// be restored but its struct pid. As CRIU does, restore starts a stand-in
// process per such process once every task of the tree exists (its PID
// must take none of theirs), opens the pidfds on it, and after the tasks
// took them makes it end the way the original ended (PIDFD_GET_INFO's exit
// code, when the dump could read it; SIGKILL, CRIU 4.2's choice, when not)
// and reaps it: the pidfds then refer to a reaped process, as before.

// standIn is the stub process standing in for one reaped process.
type standIn struct {
	stub *Stub
	attr *pb.PidfsAttrEntry
}

// startStandIns starts a stand-in for each reaped process the pidfds of
// the tree refer to.
func (rs *restorer) startStandIns() error {
	for _, g := range files.DeadPidfds(rs.plan.Files) {
		stub, err := StartStub(rs.tracer, ChooseBase(nil, StubSize))
		if err != nil {
			return fmt.Errorf("stand-in for the reaped process of pidfd file id %d: %w", g[0], err)
		}
		s := &standIn{stub: stub}
		rs.standIns = append(rs.standIns, s)
		for _, id := range g {
			rs.opener.SetStandIn(id, stub.Pid)
			if a := rs.plan.Files[id].GetPidfd().GetAttr(); a != nil && a.ExitCode != nil && s.attr == nil {
				s.attr = a
			}
		}
	}
	return nil
}

// endStandIns makes each stand-in end as the process it stands in for
// ended, and reaps it.
func (rs *restorer) endStandIns() error {
	for len(rs.standIns) > 0 {
		s := rs.standIns[0]
		rs.standIns = rs.standIns[1:]
		if err := s.end(); err != nil {
			s.stub.Kill()
			return fmt.Errorf("stand-in %d for a reaped process: %w", s.stub.Pid, err)
		}
		s.stub.cmd.Process.Release() // reaped by its tracer
	}
	return nil
}

// killStandIns removes the stand-ins of a failed restore.
func (rs *restorer) killStandIns() {
	for _, s := range rs.standIns {
		s.stub.Kill()
	}
	rs.standIns = nil
}

func (s *standIn) end() error {
	if s.attr == nil {
		return s.stub.Kill() // releases the process itself
	}
	want := unix.WaitStatus(s.attr.GetExitCode())
	var got unix.WaitStatus
	var err error
	switch {
	case want.Exited():
		got, err = runSyscallToExit(s.stub.Tracee, s.stub.SyscallAddr, unix.SYS_EXIT_GROUP, uint64(want.ExitStatus()))
	case want.Signaled():
		// Not dumpable: a signal that dumps core ends it without a core
		// file (and without the core flag in its status).
		if r, err := s.stub.Task.Syscall(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 0); err != nil || ptrace.Errno(r) != 0 {
			return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %d, %v", int64(r), err)
		}
		got, err = runSyscallToExit(s.stub.Tracee, s.stub.SyscallAddr, unix.SYS_KILL, uint64(s.stub.Pid), uint64(want.Signal()))
	default:
		return fmt.Errorf("exit status %#x is neither an exit nor a signal", uint32(want))
	}
	if err != nil {
		return err
	}
	if got.Exited() != want.Exited() || got.ExitStatus() != want.ExitStatus() || got.Signaled() != want.Signaled() || got.Signal() != want.Signal() {
		return fmt.Errorf("ended with status %#x, want %#x", uint32(got), uint32(want))
	}
	return nil
}
