package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

// eventfd describes an eventfd: its counter and semaphore mode come from
// fdinfo, its status flags too.
func (d *Dumper) eventfd(o object) error {
	raw := o.info.Fields["eventfd-count"]
	count, err := strconv.ParseUint(strings.TrimSpace(raw), 16, 64)
	if err != nil {
		return fmt.Errorf("task %d fd %d: eventfd-count %q in fdinfo: %w", o.pid, o.fd, raw, err)
	}
	flags := o.flags()
	if strings.TrimSpace(o.info.Fields["eventfd-semaphore"]) == "1" {
		flags |= unix.EFD_SEMAPHORE
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_EVENTFD.Enum(), Id: proto.Uint32(o.id), Efd: &pb.EventfdFileEntry{
		Id: proto.Uint32(o.id), Flags: proto.Uint32(flags), Fown: o.own, Counter: proto.Uint64(count),
	}})
	return nil
}

// eventpoll describes an epoll instance with the fds it watches, as fdinfo
// lists them ("tfd: N events: X data: Y pos: P ino: I sdev: D").
func (d *Dumper) eventpoll(o object) error {
	e := &pb.EventpollFileEntry{Id: proto.Uint32(o.id), Flags: proto.Uint32(o.flags()), Fown: o.own}
	for _, line := range o.info.Entries {
		if !strings.HasPrefix(line, "tfd:") {
			continue
		}
		t, err := parseTfd(line)
		if err != nil {
			return fmt.Errorf("task %d fd %d: fdinfo line %q: %w", o.pid, o.fd, line, err)
		}
		t.Id = proto.Uint32(o.id)
		e.Tfd = append(e.Tfd, t)
	}
	if closed, err := resolveEpollTargets(o.pid, o.fd, e.Tfd); err != nil {
		return err
	} else if closed >= 0 {
		return d.Checker.refuseEpoll(o.pid, o.fd, o.target, closed)
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_EVENTPOLL.Enum(), Id: proto.Uint32(o.id), Epfd: e})
	return nil
}

// epollTargetsOf reads the targets an epoll fd lists in fdinfo.
func epollTargetsOf(s *fdState) ([]*pb.EventpollTfdEntry, error) {
	var out []*pb.EventpollTfdEntry
	for _, line := range s.info.Entries {
		if !strings.HasPrefix(line, "tfd:") {
			continue
		}
		t, err := parseTfd(line)
		if err != nil {
			return nil, fmt.Errorf("task %d fd %d: fdinfo line %q: %w", s.pid, s.fd, line, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// resolveEpollTargets makes each target of epoll efd name an fd of the
// task that holds the watched file. fdinfo gives the fd number the file
// was added under; that fd may be closed since, or now hold another file,
// while the file lives on under another number (it was dup'ed): kcmp
// KCMP_EPOLL_TFD finds that number, which restore then adds, as CRIU does.
// It returns the fd number of the first target no fd of the task holds
// any more, or -1.
func resolveEpollTargets(pid, efd int, tfds []*pb.EventpollTfdEntry) (int, error) {
	var fds []int
	seen := map[uint32]int{} // targets per fd number so far: the kernel's toff
	for _, t := range tfds {
		tfd := int(t.GetTfd())
		toff := seen[t.GetTfd()]
		seen[t.GetTfd()]++
		ok, err := epollWatches(pid, efd, tfd, toff, tfd)
		if err != nil {
			return 0, fmt.Errorf("task %d fd %d: kcmp(KCMP_EPOLL_TFD) of target fd %d: %w", pid, efd, tfd, err)
		}
		if ok {
			continue
		}
		if fds == nil {
			if fds, err = ListFds(pid); err != nil {
				return 0, err
			}
		}
		found := false
		for _, fd := range fds {
			if fd == tfd || fd == efd {
				continue
			}
			if ok, err := epollWatches(pid, efd, tfd, toff, fd); err == nil && ok {
				t.Tfd, found = proto.Uint32(uint32(fd)), true
				break
			}
		}
		if !found {
			return tfd, nil
		}
	}
	return -1, nil
}

// parseTfd reads one epoll target line of fdinfo. The values after "data:"
// and "ino:"/"sdev:" are hex, "tfd:" and "pos:" decimal.
func parseTfd(line string) (*pb.EventpollTfdEntry, error) {
	f := strings.Fields(strings.NewReplacer("pos:", "pos: ", "ino:", "ino: ", "sdev:", "sdev: ").Replace(line))
	vals := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		vals[strings.TrimSuffix(f[i], ":")] = f[i+1]
	}
	num := func(key string, base int) (uint64, error) {
		v, ok := vals[key]
		if !ok {
			return 0, fmt.Errorf("no %s", key)
		}
		return strconv.ParseUint(v, base, 64)
	}
	tfd, err := num("tfd", 10)
	if err != nil {
		return nil, err
	}
	events, err := num("events", 16)
	if err != nil {
		return nil, err
	}
	data, err := num("data", 16)
	if err != nil {
		return nil, err
	}
	t := &pb.EventpollTfdEntry{Tfd: proto.Uint32(uint32(tfd)), Events: proto.Uint32(uint32(events)), Data: proto.Uint64(data)}
	if v, err := num("pos", 10); err == nil {
		t.Pos = proto.Uint64(v)
	}
	if v, err := num("ino", 16); err == nil {
		t.Inode = proto.Uint64(v)
	}
	if v, err := num("sdev", 16); err == nil {
		t.Dev = proto.Uint32(uint32(v))
	}
	return t, nil
}

// openEventfd makes an eventfd with the saved counter and mode.
func openEventfd(e *pb.EventfdFileEntry) (*os.File, error) {
	flags := int(e.GetFlags()) & (unix.EFD_SEMAPHORE | unix.EFD_NONBLOCK)
	fd, err := unix.Eventfd(0, flags|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "eventfd")
	if c := e.GetCounter(); c != 0 {
		var b [8]byte
		for i := range b {
			b[i] = byte(c >> (8 * i))
		}
		if _, err := unix.Write(fd, b[:]); err != nil {
			f.Close()
			return nil, fmt.Errorf("eventfd counter %d: %w", c, err)
		}
	}
	return f, nil
}

// openEpoll makes an empty epoll instance; its targets are fds of the task,
// so the task adds them itself once all its fds are in place (EpollTargets).
func openEpoll(e *pb.EventpollFileEntry) (*os.File, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	return os.NewFile(uintptr(fd), "epoll"), nil
}
