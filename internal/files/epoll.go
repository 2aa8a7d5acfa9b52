package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

// epollKind is an epoll instance with the files it watches. Its targets
// are fds of the task, so restore makes it empty and the task adds them
// itself once all its fds are in place (AfterFds).
type epollKind struct{ kindBase }

func newEpollKind() Kind { return &epollKind{} }

func (*epollKind) Type() pb.FdTypes { return pb.FdTypes_EVENTPOLL }

func (*epollKind) Match(s *fdState) bool { return s.target == "anon_inode:[eventpoll]" }

// Check refuses an epoll watching a file no fd of the task holds.
func (*epollKind) Check(c *Checker, s *fdState) error {
	tfds, err := epollTargetsOf(s)
	if err != nil {
		return err
	}
	if closed, err := resolveEpollTargets(s.pid, s.fd, tfds); err != nil {
		return err
	} else if closed >= 0 {
		return c.refuseEpoll(s.pid, s.fd, s.target, closed)
	}
	return nil
}

// Dump lists the targets as fdinfo gives them ("tfd: N events: X data: Y
// pos: P ino: I sdev: D"), each named by an fd the task holds it as.
func (*epollKind) Dump(d *Dumper, o object) error {
	e := &pb.EventpollFileEntry{Id: proto.Uint32(o.id), Flags: proto.Uint32(o.flags()), Fown: o.own}
	s := &fdState{pid: o.pid, fd: o.fd, info: o.info}
	tfds, err := epollTargetsOf(s)
	if err != nil {
		return err
	}
	for _, t := range tfds {
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

// Open makes an empty epoll instance.
func (*epollKind) Open(*Opener, *pb.FileEntry) (*os.File, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	return os.NewFile(uintptr(fd), "epoll"), nil
}

// AfterFds registers each target from inside the task: the targets are
// named by the task's own fd numbers. An epoll several tasks share is
// filled once, by the first.
func (*epollKind) AfterFds(t Task, fd uint32, e *pb.FileEntry) error {
	for _, tfd := range e.GetEpfd().GetTfd() {
		ev := make([]byte, 12) // struct epoll_event is packed on x86-64
		binary.LittleEndian.PutUint32(ev[0:], tfd.GetEvents())
		binary.LittleEndian.PutUint64(ev[4:], tfd.GetData())
		p, err := t.Put(ev)
		if err != nil {
			return err
		}
		if _, err := t.Call(fmt.Sprintf("epoll_ctl(%d, ADD, %d)", fd, tfd.GetTfd()), unix.SYS_EPOLL_CTL,
			uint64(fd), unix.EPOLL_CTL_ADD, uint64(tfd.GetTfd()), p); err != nil {
			return err
		}
	}
	return nil
}

func (*epollKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetEpfd().GetFown(), e.GetEpfd().GetFlags()
}

func (*epollKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("epoll, %d targets", len(e.GetEpfd().GetTfd()))
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
