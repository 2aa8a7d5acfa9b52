package restore

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	pb "github.com/gockpt/gockpt/proto"
)

// restoreFds gives the task exactly the fds it had. gockpt builds each open
// file description (files.Opener); the task takes its own copy with
// pidfd_getfd on gockpt and dup3s it to the right number. Files under
// /proc/PID of a task of the tree, and pidfds, wait until every task and
// thread exists (lateProcFds).
func (rs *restorer) restoreFds(t *Task, r *remote) error {
	// A session leader takes its controlling terminal before any child
	// is made from it: they inherit it.
	if err := rs.takeCtty(t, r); err != nil {
		return err
	}
	if rs.sharesParentFds(t) {
		return nil // born with CLONE_FILES: its parent's table, already filled
	}
	// Whatever the task inherited (the stub's stdio, the parent's table).
	if err := r.q("close_range", sysCloseRange, 0, ^uint64(0)>>32, 0); err != nil {
		return err
	}
	var now []*pb.FdinfoEntry
	for _, fd := range t.Fds {
		if rs.opener.Late(fd.GetId()) {
			rs.lateFds[t.Pid] = append(rs.lateFds[t.Pid], fd)
			continue
		}
		now = append(now, fd)
	}
	if err := rs.installFds(r, now, true); err != nil {
		return err
	}
	return rs.afterFds(t, r)
}

// sharesParentFds tells a task that shared its parent's fd table
// (CLONE_FILES without CLONE_THREAD): it is cloned with CLONE_FILES, as
// CRIU does (same files_id in both tasks' ids).
func (rs *restorer) sharesParentFds(t *Task) bool {
	return t.Parent != nil && !t.Zombie && !t.Parent.Zombie && t.IDs.GetFilesId() == t.Parent.IDs.GetFilesId()
}

// lateProcFds installs the /proc files and pidfds restoreFds left for later, once
// every task and thread of the tree exists.
func (rs *restorer) lateProcFds() error {
	for _, l := range rs.tasks {
		fds := rs.lateFds[l.t.Pid]
		if len(fds) == 0 {
			continue
		}
		l.main.reset()
		if err := rs.installFds(l.main, fds, false); err != nil {
			return fmt.Errorf("task %d: files: %w", l.t.Pid, err)
		}
	}
	return nil
}

// installFds puts each fd in place in the task, numbered and flagged as
// it was. empty says the task's fd table is empty (restoreFds closed
// all): then gockpt knows which number each new fd takes.
func (rs *restorer) installFds(r *remote, fds []*pb.FdinfoEntry, empty bool) error {
	if len(fds) == 0 {
		return nil
	}
	maxFd := uint64(0)
	for _, fd := range fds {
		if uint64(fd.GetFd()) > maxFd {
			maxFd = uint64(fd.GetFd())
		}
	}
	// The whole table is one list of syscalls: no fd number the kernel
	// picks is needed here, the runner passes each result on.
	pfd, err := r.qop("pidfd_open(gockpt)", sysPidfdOpen, val(uint64(os.Getpid())), val(0))
	if err != nil {
		return err
	}
	// Keep the pidfd above every fd the task will have.
	high, err := r.qop("fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, pfd.res(), val(unix.F_DUPFD_CLOEXEC), val(maxFd+1))
	if err != nil {
		return err
	}
	r.qopMayFail("close", unix.SYS_CLOSE, pfd.res())
	// pidfd_getfd takes the lowest free number, with close-on-exec set.
	// In an empty table gockpt knows that number (table): when it is the
	// one wanted, which it is for every fd of a table without holes, the
	// file is taken straight there. Otherwise it goes to the lowest free
	// number first and dup3 moves it in place with its close-on-exec flag.
	ids := make([]uint32, len(fds))
	for i, fd := range fds {
		ids[i] = fd.GetId()
	}
	rs.opener.OpenAhead(ids)
	var table *fdTable
	if empty {
		table = newFdTable(maxFd + 1)
	}
	for _, fd := range fds {
		f, err := rs.opener.Open(fd.GetId())
		if err != nil {
			return fmt.Errorf("fd %d: %w", fd.GetFd(), err)
		}
		want := uint64(fd.GetFd())
		cloexec := fd.GetFlags()&unix.FD_CLOEXEC != 0
		if table != nil && table.lowestFree() == want {
			got, err := r.qop(fmt.Sprintf("pidfd_getfd for fd %d", want), sysPidfdGetfd, high.res(), val(uint64(f.Fd())), val(0))
			if err != nil {
				return err
			}
			if err := r.checkResult(got, func(ret uint64) error {
				if ret != want {
					return fmt.Errorf("task %d: pidfd_getfd for fd %d gave fd %d: the task's fd table is not as restore left it", r.pid, want, int64(ret))
				}
				return nil
			}); err != nil {
				return err
			}
			table.open(want)
			if !cloexec {
				if _, err := r.qop(fmt.Sprintf("fcntl(F_SETFD) for fd %d", want), unix.SYS_FCNTL, val(want), val(unix.F_SETFD), val(0)); err != nil {
					return err
				}
			}
			continue
		}
		flags := uint64(0)
		if cloexec {
			flags = unix.O_CLOEXEC
		}
		tmp, err := r.qop(fmt.Sprintf("pidfd_getfd for fd %d", want), sysPidfdGetfd, high.res(), val(uint64(f.Fd())), val(0))
		if err != nil {
			return err
		}
		if table == nil {
			// The table may hold anything: the number taken may be the
			// one wanted, so the file goes above it first.
			above, err := r.qop(fmt.Sprintf("fcntl(F_DUPFD_CLOEXEC) for fd %d", want), unix.SYS_FCNTL, tmp.res(), val(unix.F_DUPFD_CLOEXEC), val(want+1))
			if err != nil {
				return err
			}
			if _, err := r.qop("close", unix.SYS_CLOSE, tmp.res()); err != nil {
				return err
			}
			tmp = above
		}
		if _, err := r.qop(fmt.Sprintf("dup3 to fd %d", want), unix.SYS_DUP3, tmp.res(), val(want), val(flags)); err != nil {
			return err
		}
		if _, err := r.qop("close", unix.SYS_CLOSE, tmp.res()); err != nil {
			return err
		}
		if table != nil {
			table.open(want)
		}
	}
	r.qopMayFail("close pidfd", unix.SYS_CLOSE, high.res())
	return nil
}

// fdTable follows which numbers of a task's fd table are taken, to know
// the lowest free one as the kernel gives it.
type fdTable struct {
	taken []bool
	low   uint64 // no number below it is free
}

// newFdTable is an empty table but for number high.
func newFdTable(high uint64) *fdTable {
	t := &fdTable{taken: make([]bool, high+1)}
	t.taken[high] = true
	return t
}

func (t *fdTable) lowestFree() uint64 {
	for t.low < uint64(len(t.taken)) && t.taken[t.low] {
		t.low++
	}
	return t.low
}

func (t *fdTable) open(n uint64) {
	for n >= uint64(len(t.taken)) {
		t.taken = append(t.taken, false)
	}
	t.taken[n] = true
}

// afterFds does, from inside the task, what its files need once every fd
// is in place (an epoll's targets, named by the task's fd numbers). A file
// several tasks share has it done once, by the first.
func (rs *restorer) afterFds(t *Task, r *remote) error {
	for _, fd := range t.Fds {
		if rs.opener.Late(fd.GetId()) {
			continue
		}
		if err := rs.opener.ReopenIn(kindTask{r}, fd.GetFd(), fd.GetId()); err != nil {
			return fmt.Errorf("fd %d: %w", fd.GetFd(), err)
		}
	}
	for _, fd := range t.Fds {
		id := fd.GetId()
		if rs.afterFdsDone[id] || rs.opener.Late(id) {
			continue
		}
		rs.afterFdsDone[id] = true
		if err := rs.opener.AfterFds(kindTask{r}, fd.GetFd(), id); err != nil {
			return fmt.Errorf("fd %d: %w", fd.GetFd(), err)
		}
	}
	return nil
}

// kindTask is a task as the kinds of files see it (files.Task).
type kindTask struct{ r *remote }

func (k kindTask) Pid() int { return k.r.pid }
func (k kindTask) Call(name string, nr uintptr, args ...uint64) (uint64, error) {
	return k.r.call(name, nr, args...)
}
func (k kindTask) Put(b []byte) (uint64, error) { return k.r.put(b) }

// fcntl commands of linux/fcntl.h not in x/sys/unix for every arch.
const (
	fSetSig     = 10
	fSetOwnEx   = 15
	oAsyncFlag  = unix.O_ASYNC
	fSetFlMaskO = unix.O_APPEND | unix.O_NONBLOCK | unix.O_ASYNC | unix.O_DIRECT | unix.O_NOATIME
)

// restoreOwners gives each open file description its SIGIO owner, signal
// and O_ASYNC from inside a task holding it, once every task and thread of
// the tree exists (the owner may be any of them) and after creds (the
// kernel records who set the owner, for its permission check when it sends
// SIGIO). Each file description is done once, by its first holder.
func (rs *restorer) restoreOwners() error {
	done := map[uint32]bool{}
	for _, l := range rs.tasks {
		if l.t.Zombie {
			continue
		}
		r := l.main
		r.reset()
		for _, fd := range l.t.Fds {
			id := fd.GetId()
			if done[id] {
				continue
			}
			done[id] = true
			own, flags := files.Owner(rs.plan.Files[id], rs.plan.Files)
			if err := setOwner(r, uint64(fd.GetFd()), own, flags); err != nil {
				return fmt.Errorf("task %d fd %d: %w", l.t.Pid, fd.GetFd(), err)
			}
		}
	}
	return nil
}

func setOwner(r *remote, fd uint64, own *pb.FownEntry, flags uint32) error {
	if sig := own.GetSignum(); sig != 0 {
		if _, err := r.call(fmt.Sprintf("fcntl(F_SETSIG, %d)", sig), unix.SYS_FCNTL, fd, fSetSig, uint64(sig)); err != nil {
			return err
		}
	}
	if pid := own.GetPid(); pid != 0 {
		// struct f_owner_ex: type, pid.
		b := make([]byte, 8)
		binary.NativeEndian.PutUint32(b, own.GetPidType())
		binary.NativeEndian.PutUint32(b[4:], pid)
		a, err := r.put(b)
		if err != nil {
			return err
		}
		if _, err := r.call(fmt.Sprintf("fcntl(F_SETOWN_EX, type %d, %d)", own.GetPidType(), pid), unix.SYS_FCNTL, fd, fSetOwnEx, a); err != nil {
			return err
		}
	}
	if flags&oAsyncFlag != 0 {
		cur, err := r.call("fcntl(F_GETFL)", unix.SYS_FCNTL, fd, unix.F_GETFL)
		if err != nil {
			return err
		}
		if _, err := r.call("fcntl(F_SETFL, O_ASYNC)", unix.SYS_FCNTL, fd, unix.F_SETFL, cur&fSetFlMaskO|oAsyncFlag); err != nil {
			return err
		}
	}
	return nil
}
