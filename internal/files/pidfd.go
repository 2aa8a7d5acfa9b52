package files

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// pidfdThread is PIDFD_THREAD: a pidfd of one thread (Linux 6.9), which
// the kernel keeps in the file's flags as O_EXCL.
const pidfdThread = unix.O_EXCL

// pidfdTarget is the process (or thread) a pidfd refers to, as its fdinfo
// tells: Pid: in the PID namespace of /proc, -1 once it has been reaped,
// 0 when it lives in no namespace /proc sees; NSpid: its PID in its own
// innermost namespace, what CRIU saves and hands to pidfd_open.
func pidfdTarget(s *fdState) (pid, nspid int, err error) {
	pid, err = strconv.Atoi(s.info.Fields["Pid"])
	if err != nil {
		return 0, 0, fmt.Errorf("task %d fd %d: pidfd without a Pid: line in fdinfo", s.pid, s.fd)
	}
	nspid = pid
	if f := strings.Fields(s.info.Fields["NSpid"]); len(f) > 0 {
		if nspid, err = strconv.Atoi(f[len(f)-1]); err != nil {
			return 0, 0, fmt.Errorf("task %d fd %d: pidfd NSpid: %q in fdinfo", s.pid, s.fd, s.info.Fields["NSpid"])
		}
	}
	return pid, nspid, nil
}

// pidfdKind is a pidfd (pidfd_open(2), clone's CLONE_PIDFD): restore
// opens it on the restored process, once every task and thread exists, or
// on a stand-in for a process reaped before the dump.
type pidfdKind struct {
	kindBase
	// standIns are the processes standing in for processes reaped before
	// the dump, by pidfd file id (DeadPidfds).
	standIns map[uint32]int
}

func newPidfdKind() Kind { return &pidfdKind{standIns: map[uint32]int{}} }

func (*pidfdKind) Type() pb.FdTypes { return pb.FdTypes_PIDFD }

func (*pidfdKind) Match(s *fdState) bool {
	return s.target == "anon_inode:[pidfd]" || strings.HasPrefix(s.target, "pidfd:")
}

func (*pidfdKind) Check(c *Checker, s *fdState) error { return c.checkPidfd(s) }

func (*pidfdKind) Late(*Opener, *pb.FileEntry) bool { return true }

func (*pidfdKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetPidfd().GetFown(), e.GetPidfd().GetFlags()
}

func (*pidfdKind) Describe(e *pb.FileEntry) string {
	p := e.GetPidfd()
	what, who := "PID", "process"
	if p.GetFlags()&pidfdThread != 0 {
		what, who = "thread", "thread"
	}
	if p.GetNspid() == -1 {
		return fmt.Sprintf("pidfd of a %s reaped before the dump", who)
	}
	return fmt.Sprintf("pidfd of %s %d", what, p.GetNspid())
}

// SetStandIn names the process standing in for the reaped process of
// pidfd file entry id.
func (o *Opener) SetStandIn(id uint32, pid int) {
	o.kinds.byType[pb.FdTypes_PIDFD].(*pidfdKind).standIns[id] = pid
}

// checkPidfd refuses a pidfd restore could not point at the same process:
// one of a process outside the tree. A pidfd of a process reaped before the
// dump (Pid: -1) is kept: restore points it at a stand-in that ends the
// same way.
func (c *Checker) checkPidfd(s *fdState) error {
	pid, _, err := pidfdTarget(s)
	if err != nil {
		return err
	}
	thread := s.info.Flags&pidfdThread != 0
	what := "PID"
	if thread {
		what = "thread"
	}
	switch {
	case pid == -1:
		return nil
	case pid == 0:
		r := c.refuse(s, support.Pidfd, "pidfd of a process in a PID namespace gockpt does not see")
		r.Advice = "close it before dumping, or run gockpt in that PID namespace with the tree that contains the process"
		return r
	}
	inTree := c.InTree
	if inTree == nil {
		inTree = func(p int) bool { return p == s.pid }
	}
	if inTree(pid) || thread && inTree(tgidOf(pid)) {
		return nil
	}
	r := c.refuse(s, support.Pidfd, fmt.Sprintf("pidfd of %s %d (%s)", what, pid, c.Comm(pid)))
	r.Advice = fmt.Sprintf("close it before dumping, or dump the tree that contains %s %d", what, pid)
	return r
}

// pidfd describes a pidfd as CRIU 4.2 does: the target's PID in its own
// namespace, the status flags without the access mode (PIDFD_NONBLOCK is
// O_NONBLOCK, PIDFD_THREAD is O_EXCL), the pidfs inode.
func (*pidfdKind) Dump(d *Dumper, o object) error {
	s := &fdState{pid: o.pid, fd: o.fd, info: o.info}
	_, nspid, err := pidfdTarget(s)
	if err != nil {
		return err
	}
	e := &pb.PidfdEntry{
		Id:    proto.Uint32(o.id),
		Ino:   proto.Uint32(uint32(o.st.Ino)),
		Flags: proto.Uint32(o.flags() &^ unix.O_ACCMODE),
		Nspid: proto.Int32(int32(nspid)),
		Fown:  o.own,
	}
	if nspid == -1 {
		if e.Attr, err = d.exitOf(o); err != nil {
			return err
		}
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_PIDFD.Enum(), Id: proto.Uint32(o.id), Pidfd: e})
	return nil
}

// exitOf is how the reaped process a pidfd refers to ended, as the kernel
// keeps it for PIDFD_GET_INFO (Linux 6.15); nil where the kernel cannot
// tell, and then no one can read it from the pidfd either.
func (d *Dumper) exitOf(o object) (*pb.PidfsAttrEntry, error) {
	dup, err := d.Checker.dup(o.pid, o.fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dup)
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
	if err := unix.IoctlPidfdInfo(dup, &info); err != nil || info.Mask&unix.PIDFD_INFO_EXIT == 0 {
		return nil, nil
	}
	return &pb.PidfsAttrEntry{ExitCode: proto.Int32(info.Exit_code)}, nil
}

// openPidfd opens a pidfd of the restored process, or of the stand-in for
// a process reaped before the dump: restore calls it once every task and
// thread of the tree, and every stand-in, exists.
func (k *pidfdKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetPidfd()
	pid := int(e.GetNspid())
	if pid == -1 {
		var ok bool
		if pid, ok = k.standIns[fe.GetId()]; !ok {
			return nil, fmt.Errorf("pidfd of a reaped process: no stand-in process for it")
		}
	}
	fd, err := unix.PidfdOpen(pid, int(e.GetFlags()))
	if err != nil {
		return nil, fmt.Errorf("pidfd_open(%d, %#o): %w", pid, e.GetFlags(), err)
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), nil
}

// DeadPidfds groups the pidfd entries of processes reaped before the dump
// by the process they referred to (the pidfs inode; an entry without one is
// a group of its own): restore makes one stand-in per group.
func DeadPidfds(files map[uint32]*pb.FileEntry) [][]uint32 {
	var groups [][]uint32
	byIno := map[uint32]int{}
	ids := make([]uint32, 0, len(files))
	for id := range files {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := files[id].GetPidfd()
		if files[id].GetType() != pb.FdTypes_PIDFD || e.GetNspid() != -1 {
			continue
		}
		if i, ok := byIno[e.GetIno()]; ok && e.GetIno() != 0 {
			groups[i] = append(groups[i], id)
			continue
		}
		byIno[e.GetIno()] = len(groups)
		groups = append(groups, []uint32{id})
	}
	return groups
}
