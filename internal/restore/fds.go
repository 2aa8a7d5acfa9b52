package restore

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

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
