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
// pidfd_getfd on gockpt and dup3s it to the right number.
func (rs *restorer) restoreFds(t *Task, r *remote) error {
	// Whatever the task inherited (the stub's stdio, the parent's table).
	if _, err := r.call("close_range", sysCloseRange, 0, ^uint64(0)>>32, 0); err != nil {
		return err
	}
	if len(t.Fds) == 0 {
		return nil
	}
	maxFd := uint64(0)
	for _, fd := range t.Fds {
		if uint64(fd.GetFd()) > maxFd {
			maxFd = uint64(fd.GetFd())
		}
	}
	pfd, err := r.call("pidfd_open(gockpt)", sysPidfdOpen, uint64(os.Getpid()), 0)
	if err != nil {
		return err
	}
	// Keep the pidfd above every fd the task will have.
	high, err := r.call("fcntl(F_DUPFD_CLOEXEC)", unix.SYS_FCNTL, pfd, unix.F_DUPFD_CLOEXEC, maxFd+1)
	if err != nil {
		return err
	}
	r.call("close", unix.SYS_CLOSE, pfd)
	defer r.call("close pidfd", unix.SYS_CLOSE, high)
	for _, fd := range t.Fds {
		f, err := rs.opener.Open(fd.GetId())
		if err != nil {
			return fmt.Errorf("fd %d: %w", fd.GetFd(), err)
		}
		tmp, err := r.call(fmt.Sprintf("pidfd_getfd for fd %d", fd.GetFd()), sysPidfdGetfd, high, uint64(f.Fd()), 0)
		if err != nil {
			return err
		}
		want := uint64(fd.GetFd())
		cloexec := fd.GetFlags()&unix.FD_CLOEXEC != 0
		if tmp != want {
			flags := uint64(0)
			if cloexec {
				flags = unix.O_CLOEXEC
			}
			if _, err := r.call(fmt.Sprintf("dup3(%d, %d)", tmp, want), unix.SYS_DUP3, tmp, want, flags); err != nil {
				return err
			}
			if _, err := r.call("close", unix.SYS_CLOSE, tmp); err != nil {
				return err
			}
		} else {
			v := uint64(0)
			if cloexec {
				v = unix.FD_CLOEXEC
			}
			if _, err := r.call("fcntl(F_SETFD)", unix.SYS_FCNTL, want, unix.F_SETFD, v); err != nil {
				return err
			}
		}
	}
	return rs.epollTargets(t, r)
}

// epollTargets registers, from inside the task, what each of its epoll
// instances watched: the targets are named by the task's own fd numbers.
// An epoll shared by several tasks is filled once.
func (rs *restorer) epollTargets(t *Task, r *remote) error {
	for _, fd := range t.Fds {
		e := rs.plan.Files[fd.GetId()]
		if e.GetType() != pb.FdTypes_EVENTPOLL || rs.epollDone[fd.GetId()] {
			continue
		}
		rs.epollDone[fd.GetId()] = true
		for _, tfd := range e.GetEpfd().GetTfd() {
			ev := make([]byte, 12) // struct epoll_event is packed on x86-64
			binary.LittleEndian.PutUint32(ev[0:], tfd.GetEvents())
			binary.LittleEndian.PutUint64(ev[4:], tfd.GetData())
			p, err := r.put(ev)
			if err != nil {
				return err
			}
			if _, err := r.call(fmt.Sprintf("epoll_ctl(%d, ADD, %d)", fd.GetFd(), tfd.GetTfd()), unix.SYS_EPOLL_CTL,
				uint64(fd.GetFd()), unix.EPOLL_CTL_ADD, uint64(tfd.GetTfd()), p); err != nil {
				return err
			}
		}
	}
	return nil
}

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
