package files

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// netlinkKind is a netlink socket (route, uevent, generic and the other
// protocols): its protocol, the port id it is bound to, the multicast
// groups it listens to, where it is connected and its NETLINK_* options.
// Messages the kernel queued to it cannot be put back: a socket with any
// is refused.
type netlinkKind struct{ kindBase }

func newNetlinkKind() Kind { return &netlinkKind{} }

// NETLINK_* boolean options of linux/netlink.h that change what the
// socket receives, and SOL_NETLINK.
const solNetlink = 270

var netlinkOptions = []struct {
	opt  int
	name string
}{
	{3, "NETLINK_PKTINFO"},
	{4, "NETLINK_BROADCAST_ERROR"},
	{5, "NETLINK_NO_ENOBUFS"},
	{8, "NETLINK_LISTEN_ALL_NSID"},
	{10, "NETLINK_CAP_ACK"},
	{11, "NETLINK_EXT_ACK"},
	{12, "NETLINK_GET_STRICT_CHK"},
}

// netlinkListMemberships is NETLINK_LIST_MEMBERSHIPS: the groups bitmap.
const netlinkListMemberships = 9

func (*netlinkKind) Type() pb.FdTypes { return pb.FdTypes_NETLINKSK }

func (*netlinkKind) Match(s *fdState) bool {
	return strings.HasPrefix(s.target, "socket:[") && s.sockProto() == "NETLINK"
}

// Check refuses a socket with messages queued to it (they came from the
// kernel and cannot be sent again).
func (*netlinkKind) Check(c *Checker, s *fdState) error {
	dup, err := c.dup(s.pid, s.fd)
	if err != nil {
		return err
	}
	defer unix.Close(dup)
	proto, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, soProtocol)
	if n, err := netlinkQueued(dup); err != nil {
		return fmt.Errorf("task %d fd %d: netlink socket: %w", s.pid, s.fd, err)
	} else if n > 0 {
		r := c.refuse(s, support.NetlinkQueues, fmt.Sprintf("netlink socket (%s)", netlinkName(proto)))
		r.Detail = fmt.Sprintf("messages are queued to it (%d bytes of its receive buffer)", n)
		return r
	}
	return nil
}

// netlinkQueued is the memory the socket's receive queue holds
// (SO_MEMINFO's SK_MEMINFO_RMEM_ALLOC).
func netlinkQueued(fd int) (uint32, error) {
	b := make([]byte, 9*4)
	n, err := getsockoptBytes(fd, unix.SOL_SOCKET, unix.SO_MEMINFO, b)
	if err != nil {
		return 0, fmt.Errorf("SO_MEMINFO: %w", err)
	}
	if n < 4 {
		return 0, fmt.Errorf("SO_MEMINFO gave %d bytes", n)
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24, nil
}

func (*netlinkKind) Dump(d *Dumper, o object) error {
	dup, err := d.Checker.dup(o.pid, o.fd)
	if err != nil {
		return err
	}
	defer unix.Close(dup)
	fail := func(what string, err error) error {
		return fmt.Errorf("task %d fd %d: netlink socket: %s: %w", o.pid, o.fd, what, err)
	}
	protocol, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, soProtocol)
	if err != nil {
		return fail("SO_PROTOCOL", err)
	}
	typ, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return fail("SO_TYPE", err)
	}
	local, err := unix.Getsockname(dup)
	if err != nil {
		return fail("getsockname", err)
	}
	e := &pb.NetlinkSkEntry{Id: proto.Uint32(o.id), Ino: proto.Uint32(uint32(o.st.Ino)), Protocol: proto.Uint32(uint32(protocol)),
		State: proto.Uint32(0), Flags: proto.Uint32(o.flags()), DstPortid: proto.Uint32(0), DstGroup: proto.Uint32(0),
		Fown: o.own, SkType: proto.Uint32(uint32(typ))}
	if nl, ok := local.(*unix.SockaddrNetlink); ok {
		e.Portid = proto.Uint32(nl.Pid)
	} else {
		e.Portid = proto.Uint32(0)
	}
	if peer, err := unix.Getpeername(dup); err == nil {
		if nl, ok := peer.(*unix.SockaddrNetlink); ok && (nl.Pid != 0 || nl.Groups != 0) {
			e.State = proto.Uint32(1) // NETLINK_CONNECTED
			e.DstPortid, e.DstGroup = proto.Uint32(nl.Pid), proto.Uint32(nl.Groups)
		}
	}
	groups := make([]byte, 128)
	n, err := getsockoptBytes(dup, solNetlink, netlinkListMemberships, groups)
	if err != nil {
		return fail("NETLINK_LIST_MEMBERSHIPS", err)
	}
	for i := 0; i+4 <= n && i+4 <= len(groups); i += 4 {
		e.Groups = append(e.Groups, uint32(groups[i])|uint32(groups[i+1])<<8|uint32(groups[i+2])<<16|uint32(groups[i+3])<<24)
	}
	for len(e.Groups) > 0 && e.Groups[len(e.Groups)-1] == 0 {
		e.Groups = e.Groups[:len(e.Groups)-1]
	}
	var opts uint64
	for _, no := range netlinkOptions {
		if v, err := unix.GetsockoptInt(dup, solNetlink, no.opt); err == nil && v != 0 {
			opts |= 1 << no.opt
		}
	}
	e.NlOptions = proto.Uint64(opts)
	if e.Opts, err = unixOpts(dup); err != nil {
		return fail("options", err)
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_NETLINKSK.Enum(), Id: proto.Uint32(o.id), Nlsk: e})
	return nil
}

// Open makes the socket, binds it to its port id and groups, connects it
// where it was, and sets its options.
func (*netlinkKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetNlsk()
	what := describeNetlink(e)
	typ := unix.SOCK_RAW
	if e.SkType != nil {
		typ = int(e.GetSkType())
	}
	fd, err := unix.Socket(unix.AF_NETLINK, typ|unix.SOCK_CLOEXEC, int(e.GetProtocol()))
	if err != nil {
		return nil, fmt.Errorf("%s: socket: %w", what, err)
	}
	f := os.NewFile(uintptr(fd), "netlink")
	fail := func(err error) (*os.File, error) {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var first uint32
	if g := e.GetGroups(); len(g) > 0 {
		first = g[0]
	}
	if e.GetPortid() != 0 || first != 0 {
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: e.GetPortid(), Groups: first}); err != nil {
			return fail(fmt.Errorf("bind to port id %d: %w (is the port id taken by another socket?)", e.GetPortid(), err))
		}
	}
	for i, word := range e.GetGroups() {
		if i == 0 {
			continue
		}
		for b := 0; b < 32; b++ {
			if word&(1<<b) != 0 {
				if err := unix.SetsockoptInt(fd, solNetlink, unix.NETLINK_ADD_MEMBERSHIP, i*32+b+1); err != nil {
					return fail(fmt.Errorf("join group %d: %w", i*32+b+1, err))
				}
			}
		}
	}
	if e.GetState() == 1 {
		if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: e.GetDstPortid(), Groups: e.GetDstGroup()}); err != nil {
			return fail(fmt.Errorf("connect: %w", err))
		}
	}
	for _, no := range netlinkOptions {
		if e.GetNlOptions()&(1<<no.opt) != 0 {
			if err := unix.SetsockoptInt(fd, solNetlink, no.opt, 1); err != nil {
				return fail(fmt.Errorf("%s: %w", no.name, err))
			}
		}
	}
	if err := setUnixOpts(fd, e.GetOpts()); err != nil {
		return fail(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(e.GetFlags()&(unix.O_NONBLOCK|unix.O_ASYNC))); err != nil {
		return fail(fmt.Errorf("F_SETFL: %w", err))
	}
	return f, nil
}

func (*netlinkKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetNlsk().GetFown(), e.GetNlsk().GetFlags()
}

func (*netlinkKind) Describe(e *pb.FileEntry) string { return describeNetlink(e.GetNlsk()) }

func describeNetlink(e *pb.NetlinkSkEntry) string {
	d := fmt.Sprintf("netlink socket (%s) port id %d", netlinkName(int(e.GetProtocol())), e.GetPortid())
	if len(e.GetGroups()) > 0 {
		d += fmt.Sprintf(" groups %#x", e.GetGroups())
	}
	return d
}
