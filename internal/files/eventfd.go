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

// eventfdKind is eventfd(2): a counter, and the semaphore mode.
type eventfdKind struct{ kindBase }

func newEventfdKind() Kind { return &eventfdKind{} }

func (*eventfdKind) Type() pb.FdTypes { return pb.FdTypes_EVENTFD }

func (*eventfdKind) Match(s *fdState) bool { return s.target == "anon_inode:[eventfd]" }

// Dump takes the counter and semaphore mode from fdinfo, the status flags
// too.
func (*eventfdKind) Dump(d *Dumper, o object) error {
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

// Open makes an eventfd with the saved counter and mode.
func (*eventfdKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetEfd()
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

func (*eventfdKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetEfd().GetFown(), e.GetEfd().GetFlags()
}

func (*eventfdKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("eventfd counter %d", e.GetEfd().GetCounter())
}
