package restore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// loadLocks reads filelocks.img, if the dump wrote one (gockpt and CRIU
// with --file-locks).
func (p *Plan) loadLocks() error {
	locks, _, err := optionalEntries(p.Dir, images.FileLocksFile, func() *pb.FileLockEntry { return &pb.FileLockEntry{} })
	p.Locks = locks
	return err
}

// checkLocks refuses, before any task is made, a lock restore could not
// take again: one of a task or fd the images lack, a lease, a kind it
// does not know.
func (p *Plan) checkLocks(mismatch func(string, ...any) error) error {
	byPid := map[int]*Task{}
	for _, t := range p.Tasks {
		byPid[t.Pid] = t
	}
	for i, e := range p.Locks {
		t := byPid[int(e.GetPid())]
		if t == nil || t.Zombie {
			return mismatch("%s entry %d: a lock of task %d, which is not a live task of pstree.img", images.FileLocksFile, i, e.GetPid())
		}
		if lockFd(t, e) == nil {
			return mismatch("%s entry %d: a lock on fd %d of task %d, which has no such fd", images.FileLocksFile, i, e.GetFd(), t.Pid)
		}
		if _, err := files.LockOf(e); err != nil {
			return fmt.Errorf("%s entry %d: task %d fd %d: %w", images.FileLocksFile, i, t.Pid, e.GetFd(), err)
		}
	}
	return nil
}

// lockFd is the fd a lock is taken through, nil if its task has none.
func lockFd(t *Task, e *pb.FileLockEntry) *pb.FdinfoEntry {
	for _, fd := range t.Fds {
		if int32(fd.GetFd()) == e.GetFd() {
			return fd
		}
	}
	return nil
}

// checkLocksAsked refuses images holding locks when restore was not told
// to take them: the tree would run without locks it counts on.
func checkLocksAsked(p *Plan, asked bool) error {
	if len(p.Locks) == 0 || asked {
		return nil
	}
	l, _ := files.LockOf(p.Locks[0])
	e := p.Locks[0]
	n := fmt.Sprintf("%d file locks", len(p.Locks))
	if len(p.Locks) == 1 {
		n = "a file lock"
	}
	return fmt.Errorf("the images hold %s (%s; task %d fd %d holds %s on %s): restore with --file-locks to take them again",
		n, images.FileLocksFile, e.GetPid(), e.GetFd(), l.Describe(), lockFile(p, byPidFd(p, e)))
}

func byPidFd(p *Plan, e *pb.FileLockEntry) *pb.FdinfoEntry {
	for _, t := range p.Tasks {
		if t.Pid == int(e.GetPid()) {
			return lockFd(t, e)
		}
	}
	return nil
}

// lockFile names the file a lock is on, as image show does.
func lockFile(p *Plan, fd *pb.FdinfoEntry) string {
	if fd == nil {
		return "?"
	}
	if d := files.Describe(p.Files[fd.GetId()]); d != "" {
		return d
	}
	return fmt.Sprintf("file id %d", fd.GetId())
}

// restoreLocks takes every lock again, in the order of the images (the
// order the kernel listed them), each from inside its task: after every
// fd of every task is in place (a close in the task's fd table on the
// file would drop its POSIX locks), before any task runs (one could take
// a lock first). A lock held meanwhile by a process outside the tree
// fails the restore, which then kills the tree: its locks go with it.
func (rs *restorer) restoreLocks() error {
	for _, e := range rs.plan.Locks {
		l := rs.byPid[int(e.GetPid())]
		fd := lockFd(l.t, e)
		r := l.main
		r.reset()
		if err := files.TakeLock(kindTask{r}, e); err != nil {
			return rs.lockError(l.t.Pid, fd, e, err)
		}
	}
	if len(rs.plan.Locks) > 0 {
		rs.trace(fmt.Sprintf("%d file locks taken", len(rs.plan.Locks)))
	}
	return nil
}

// lockError names the lock that could not be taken, its file, and, for
// a conflict, who holds the lock in the way.
func (rs *restorer) lockError(pid int, fd *pb.FdinfoEntry, e *pb.FileLockEntry, err error) error {
	lk, _ := files.LockOf(e)
	what := fmt.Sprintf("task %d fd %d: %s: %s", pid, e.GetFd(), lockFile(rs.plan, fd), lk.Describe())
	if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%s: cannot be taken again: %w", what, err)
	}
	return fmt.Errorf("%s: cannot be taken again: %s holds a conflicting lock on the file; release it and restore again (%w)", what, rs.lockHolder(fd, lk), err)
}

// lockHolder says who holds a lock conflicting with lk, as far as gockpt
// can tell: F_OFD_GETLK on gockpt's copy of the task's open file
// description names a POSIX holder's PID (the tree's own locks all agree
// with lk: they were held together).
func (rs *restorer) lockHolder(fd *pb.FdinfoEntry, lk proc.Lock) string {
	if fd == nil || lk.Class == "FLOCK" {
		return "another open file description"
	}
	f, err := rs.opener.Open(fd.GetId())
	if err != nil {
		return "another process"
	}
	typ := uint16(unix.F_RDLCK)
	if lk.Type == "WRITE" {
		typ = unix.F_WRLCK
	}
	length := int64(0)
	if lk.End >= 0 {
		length = lk.End - lk.Start + 1
	}
	fl := unix.Flock_t{Type: int16(typ), Whence: 0, Start: lk.Start, Len: length}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &fl); err != nil || fl.Type == unix.F_UNLCK {
		return "another process"
	}
	if fl.Pid > 0 {
		return fmt.Sprintf("process %d (%s)", fl.Pid, commOf(int(fl.Pid)))
	}
	return "an open file description of another process (OFD lock)"
}

// commOf is a process's name, "?" when it is gone.
func commOf(pid int) string {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return "?"
	}
	return st.Comm
}
