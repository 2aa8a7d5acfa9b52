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

// signalfdKind is signalfd(2): the set of signals it reads. It holds no
// signals itself (they stay pending in the task reading it, which restore
// keeps), so gockpt can make it: a signalfd reads the signals of whoever
// reads it, not of whoever made it.
type signalfdKind struct{ kindBase }

func newSignalfdKind() Kind { return &signalfdKind{} }

func (*signalfdKind) Type() pb.FdTypes { return pb.FdTypes_SIGNALFD }

func (*signalfdKind) Match(s *fdState) bool { return s.target == "anon_inode:[signalfd]" }

// parseSigmask reads fdinfo's "sigmask:", 16 hex digits as /proc status
// prints a signal set: bit N-1 is signal N, as CRIU's sigmask field holds it.
func parseSigmask(raw string) (uint64, error) {
	return strconv.ParseUint(strings.TrimSpace(raw), 16, 64)
}

// Dump keeps the mask and the status flags (O_NONBLOCK); close-on-exec is
// the fd's.
func (*signalfdKind) Dump(d *Dumper, o object) error {
	raw, ok := o.info.Fields["sigmask"]
	if !ok {
		return fmt.Errorf("task %d fd %d: signalfd without a sigmask: line in fdinfo", o.pid, o.fd)
	}
	mask, err := parseSigmask(raw)
	if err != nil {
		return fmt.Errorf("task %d fd %d: sigmask %q in fdinfo: %w", o.pid, o.fd, raw, err)
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_SIGNALFD.Enum(), Id: proto.Uint32(o.id), Sgfd: &pb.SignalfdEntry{
		Id: proto.Uint32(o.id), Flags: proto.Uint32(o.flags()), Fown: o.own, Sigmask: proto.Uint64(mask),
	}})
	return nil
}

// Open makes a signalfd reading the saved signals.
func (*signalfdKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetSgfd()
	var mask unix.Sigset_t
	mask.Val[0] = e.GetSigmask()
	flags := int(e.GetFlags())&unix.O_NONBLOCK | unix.SFD_CLOEXEC
	fd, err := unix.Signalfd(-1, &mask, flags)
	if err != nil {
		return nil, fmt.Errorf("signalfd(mask %#x): %w", e.GetSigmask(), err)
	}
	return os.NewFile(uintptr(fd), "signalfd"), nil
}

func (*signalfdKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetSgfd().GetFown(), e.GetSgfd().GetFlags()
}

func (*signalfdKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("signalfd mask %#x", e.GetSgfd().GetSigmask())
}
