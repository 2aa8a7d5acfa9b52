package files

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// inetKind is an IPv4 or IPv6 TCP or UDP socket that holds no connection:
// a TCP listener (its backlog empty) or a TCP socket not connected, and a
// UDP socket, bound or not, connected or not, its receive queue empty.
// Its addresses, listen backlog and the options that change behaviour
// are kept, as CRIU's InetSkEntry holds them; restore binds the same
// address and port, and says which one when it cannot. An established
// connection, a TCP socket in any other state and queued datagrams are
// refused, each named as ss shows it.
type inetKind struct {
	kindBase
	// repaired are the sockets in repair mode: dump's copies of
	// established connections, or restore's new ones.
	repaired []tcpSock
	// pre are the connections ReadStreams read, by inode; streams,
	// those dumped, for their images.
	pre     map[uint64]*tcpStream
	streams []*tcpStream
	// preEntry are their image entries, read by ReadStreams too.
	preEntry map[uint64]*pb.InetSkEntry
}

func newInetKind() Kind { return &inetKind{} }

func (*inetKind) Type() pb.FdTypes { return pb.FdTypes_INETSK }

func (*inetKind) Match(s *fdState) bool {
	if !strings.HasPrefix(s.target, "socket:[") {
		return false
	}
	switch s.sockProto() {
	case "TCP", "TCPv6", "UDP", "UDPv6", "MPTCP", "MPTCPv6":
		return true
	}
	return false
}

// ipprotoMPTCP is IPPROTO_MPTCP: Multipath TCP, which Go (1.24 on) asks
// for when it listens. A listener or a socket not connected is made
// again as one; a connection is refused (repair mode is TCP's only).
const ipprotoMPTCP = 262

// TCP states (include/net/tcp_states.h) gockpt keeps.
const tcpClose = 7

// Check refuses what is not kept: a TCP socket in a connection (the
// refusal says --tcp-established, as CRIU's), connections waiting to be
// accepted, datagrams waiting to be read.
func (*inetKind) Check(c *Checker, s *fdState) error {
	if c.readConns[s.st.Ino] {
		return nil // an established connection, read with --tcp-established
	}
	dup, err := c.dup(s.pid, s.fd)
	if err != nil {
		return err
	}
	defer unix.Close(dup)
	domain, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, soDomain)
	typ, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_TYPE)
	protocol, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, soProtocol)
	// Named only when refused: a frozen tree's sockets are all checked
	// again, and each call counts.
	var desc, criu string
	describe := func() { desc, _, criu = describeInet(dup, domain, typ, protocol) }
	if typ == unix.SOCK_STREAM {
		ti, err := unix.GetsockoptTCPInfo(dup, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return fmt.Errorf("task %d fd %d: TCP_INFO: %w", s.pid, s.fd, err)
		}
		switch {
		case ti.State == tcpListen:
			if ti.Unacked > 0 && !c.SkipInFlight {
				describe()
				r := c.refuse(s, support.TCPPending, desc)
				r.Detail = fmt.Sprintf("%d connections wait to be accepted", ti.Unacked)
				if ti.Unacked == 1 {
					r.Detail = "1 connection waits to be accepted"
				}
				return r
			}
			return nil
		case ti.State == tcpClose:
			return nil
		case protocol == ipprotoMPTCP:
			describe()
			return c.refuse(s, support.MPTCPConnections, desc)
		case tcpConnected(uint32(ti.State)) && (c.TCPEstablished || c.TCPClose):
			return nil
		case tcpConnected(uint32(ti.State)):
			describe()
			return c.refuse(s, support.TCPSockets, desc)
		case ti.State == tcpSynSent:
			describe()
			// Not connected yet, the socket has no peer name: the
			// kernel's table says whom it calls.
			if peer := procNetPeer(s.pid, s.st.Ino, domain == unix.AF_INET6); peer != "" {
				local, _ := unix.Getsockname(dup)
				desc = "TCP " + addrString(local) + " -> " + peer + " SYN-SENT"
			}
			return c.refuse(s, support.TCPConnecting, desc)
		}
		describe()
		r := c.refuse(s, support.TCPOddState, desc)
		r.CRIU = criu
		return r
	}
	// Datagrams waiting to be read are dropped and counted (Dump): a
	// receive queue cannot be filled again from its original senders.
	return nil
}

// countQueue counts the datagrams waiting in a UDP socket and their bytes,
// peeking from offset 0 (the socket's peek offset is put back after).
func countQueue(fd int) (n, bytes int, err error) {
	if q, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err != nil || q == 0 {
		return 0, 0, err
	}
	orig, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return 0, 0, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return 0, 0, fmt.Errorf("set SO_PEEK_OFF: %w", err)
	}
	defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, orig)
	buf := make([]byte, 64<<10)
	for n < 1<<20 {
		m, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		if err != nil {
			break
		}
		n, bytes = n+1, bytes+m
	}
	return n, bytes, nil
}

func (k *inetKind) Dump(d *Dumper, o object) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("task %d fd %d: %s: %s: %w", o.pid, o.fd, o.target, what, err)
	}
	// A connection ReadStreams read has its entry read already.
	e, unacked := k.preEntry[o.st.Ino], uint32(0)
	if e == nil {
		dup, err := d.Checker.dup(o.pid, o.fd)
		if err != nil {
			return err
		}
		e, unacked, err = inetEntry(dup)
		if err == nil && e.GetType() == unix.SOCK_DGRAM {
			n, b, qerr := countQueue(dup)
			if qerr != nil {
				err = fmt.Errorf("count the datagrams waiting: %w", qerr)
			} else if n > 0 {
				log.Warnf("task %d (%s) fd %d: %s: %d datagrams (%d bytes) waiting to be read are dropped: a receive queue cannot be filled again",
					o.pid, d.Checker.Comm(o.pid), o.fd, describeInetEntry(e), n, b)
				d.DroppedDatagrams += n
				d.DroppedBytes += b
			}
		}
		unix.Close(dup)
		if err != nil {
			return fail("read", err)
		}
	}
	e.Id, e.Ino, e.Flags, e.Fown = proto.Uint32(o.id), proto.Uint32(uint32(o.st.Ino)), proto.Uint32(o.flags()), o.own
	if unacked > 0 {
		log.Warnf("task %d (%s) fd %d: %s: %d connections waiting to be accepted are left out (--skip-in-flight): their clients will see them reset",
			o.pid, d.Checker.Comm(o.pid), o.fd, describeInetEntry(e), unacked)
	}
	if e.GetType() == unix.SOCK_STREAM && tcpConnected(e.GetState()) {
		if d.Checker.TCPClose {
			log.Infof("task %d fd %d: %s: kept without its stream (--tcp-close): restore makes it closed", o.pid, o.fd, describeInetEntry(e))
		} else if st := k.pre[o.st.Ino]; st != nil {
			k.streams = append(k.streams, st)
		} else {
			return fmt.Errorf("task %d fd %d: %s: the connection was not read with the others (it is not in the tree's fd tables as they were listed)", o.pid, o.fd, describeInetEntry(e))
		}
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_INETSK.Enum(), Id: proto.Uint32(o.id), Isk: e})
	return nil
}

// inetEntry reads what the image keeps of socket fd, but for what the fd
// table says (id, flags, owner): addresses, state, backlog (and, of a
// listener, how many connections wait to be accepted), options.
func inetEntry(dup int) (*pb.InetSkEntry, uint32, error) {
	get := func(level, opt int) int {
		v, _ := unix.GetsockoptInt(dup, level, opt)
		return v
	}
	domain := get(unix.SOL_SOCKET, soDomain)
	typ := get(unix.SOL_SOCKET, unix.SO_TYPE)
	protocol := get(unix.SOL_SOCKET, soProtocol)
	var unacked uint32
	e := &pb.InetSkEntry{Family: proto.Uint32(uint32(domain)),
		Type: proto.Uint32(uint32(typ)), Proto: proto.Uint32(uint32(protocol)), State: proto.Uint32(tcpClose),
		SrcPort: proto.Uint32(0), DstPort: proto.Uint32(0), Backlog: proto.Uint32(0)}
	if typ == unix.SOCK_STREAM {
		ti, err := unix.GetsockoptTCPInfo(dup, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return nil, 0, fmt.Errorf("TCP_INFO: %w", err)
		}
		e.State = proto.Uint32(uint32(ti.State))
		if ti.State == tcpListen {
			e.Backlog = proto.Uint32(ti.Sacked) // a listener's sk_max_ack_backlog
			unacked = ti.Unacked
		}
		e.TcpOpts = &pb.TcpOptsEntry{Nodelay: proto.Bool(get(unix.IPPROTO_TCP, unix.TCP_NODELAY) != 0),
			Cork: proto.Bool(get(unix.IPPROTO_TCP, unix.TCP_CORK) != 0), Keepcnt: proto.Uint32(uint32(get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT))),
			Keepidle: proto.Uint32(uint32(get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE))), Keepintvl: proto.Uint32(uint32(get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)))}
	}
	if sa, err := unix.Getsockname(dup); err == nil {
		var port uint32
		e.SrcAddr, port = inetAddr(sa)
		e.SrcPort = proto.Uint32(port)
	}
	if sa, err := unix.Getpeername(dup); err == nil {
		var port uint32
		e.DstAddr, port = inetAddr(sa)
		e.DstPort = proto.Uint32(port)
		if typ == unix.SOCK_DGRAM {
			e.State = proto.Uint32(tcpEstablished)
		}
	} else {
		e.DstAddr = make([]uint32, len(e.SrcAddr))
	}
	var err error
	if e.Opts, err = unixOpts(dup); err != nil {
		return nil, 0, fmt.Errorf("options: %w", err)
	}
	e.Opts.Reuseaddr = proto.Bool(get(unix.SOL_SOCKET, unix.SO_REUSEADDR) != 0)
	e.Opts.SoReuseport = proto.Bool(get(unix.SOL_SOCKET, unix.SO_REUSEPORT) != 0)
	e.Opts.SoBroadcast = proto.Bool(get(unix.SOL_SOCKET, unix.SO_BROADCAST) != 0)
	e.Opts.SoKeepalive = proto.Bool(get(unix.SOL_SOCKET, unix.SO_KEEPALIVE) != 0)
	e.Opts.SoDontroute = proto.Bool(get(unix.SOL_SOCKET, unix.SO_DONTROUTE) != 0)
	e.Opts.SoOobinline = proto.Uint32(uint32(get(unix.SOL_SOCKET, unix.SO_OOBINLINE)))
	if l, err := unix.GetsockoptLinger(dup, unix.SOL_SOCKET, unix.SO_LINGER); err == nil && l.Onoff != 0 {
		e.Opts.SoLinger = proto.Uint32(uint32(l.Linger))
	}
	if dev, err := unix.GetsockoptString(dup, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err == nil && dev != "" {
		e.Opts.SoBoundDev = proto.String(dev)
	}
	// An option the socket does not answer (an MPTCP socket takes fewer
	// than a TCP one) is left out of the image: restore leaves it alone.
	getOpt := func(level, opt int) *uint32 {
		v, err := unix.GetsockoptInt(dup, level, opt)
		if err != nil {
			return nil
		}
		return proto.Uint32(uint32(v))
	}
	ip := &pb.IpOptsEntry{Freebind: proto.Bool(get(unix.SOL_IP, unix.IP_FREEBIND) != 0)}
	if domain == unix.AF_INET6 {
		e.V6Only = proto.Bool(get(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY) != 0)
		ip.Tos = getOpt(unix.IPPROTO_IPV6, unix.IPV6_TCLASS)
		ip.Ttl = getOpt(unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS)
		ip.Pktinfo = proto.Bool(get(unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO) != 0)
	} else {
		ip.Tos = getOpt(unix.IPPROTO_IP, unix.IP_TOS)
		ip.Ttl = getOpt(unix.IPPROTO_IP, unix.IP_TTL)
		ip.Pktinfo = proto.Bool(get(unix.IPPROTO_IP, unix.IP_PKTINFO) != 0)
	}
	e.IpOpts = ip
	return e, unacked, nil
}

func (k *inetKind) WriteImages(dir *images.Dir) error { return k.writeStreams(dir) }

// Close lets go of the sockets still held in repair mode: after a dump
// that killed the tree, they close without a word to the peer.
func (k *inetKind) Close() {
	for _, s := range k.repaired {
		if s.own && s.fd >= 0 {
			unix.Close(s.fd)
		}
	}
	k.repaired = nil
}

// inetAddr is an address as CRIU's image holds it: the in_addr bytes as
// 32-bit words in memory order, and the port.
func inetAddr(sa unix.Sockaddr) ([]uint32, uint32) {
	var b []byte
	var port int
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		b, port = a.Addr[:], a.Port
	case *unix.SockaddrInet6:
		b, port = a.Addr[:], a.Port
	default:
		return nil, 0
	}
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return out, uint32(port)
}

// inetSockaddr turns an image address back into a sockaddr.
func inetSockaddr(family uint32, addr []uint32, port uint32) unix.Sockaddr {
	b := make([]byte, 16)
	for i, w := range addr {
		if 4*i+4 <= len(b) {
			binary.NativeEndian.PutUint32(b[4*i:], w)
		}
	}
	if family == unix.AF_INET6 {
		sa := &unix.SockaddrInet6{Port: int(port)}
		copy(sa.Addr[:], b)
		return sa
	}
	sa := &unix.SockaddrInet4{Port: int(port)}
	copy(sa.Addr[:], b)
	return sa
}

// Open makes the socket, binds it to the same address and port, listens
// or connects as it did, and sets its options.
func (k *inetKind) Open(op *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetIsk()
	what := describeInetEntry(e)
	var stream *tcpStream
	if e.GetType() == unix.SOCK_STREAM && tcpConnected(e.GetState()) && !op.TCPClose {
		var err error
		if stream, err = op.stream(e); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	fd, err := unix.Socket(int(e.GetFamily()), int(e.GetType())|unix.SOCK_CLOEXEC, int(e.GetProto()))
	if err != nil {
		return nil, fmt.Errorf("%s: socket: %w", what, err)
	}
	f := os.NewFile(uintptr(fd), "inet")
	fail := func(err error) (*os.File, error) {
		f.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	o := e.GetOpts()
	setInt := func(level, opt int, v int, name string) error {
		if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
			// An MPTCP socket takes fewer options than a TCP one: one
			// it does not take but already has as asked is no loss.
			if cur, gerr := unix.GetsockoptInt(fd, level, opt); e.GetProto() == ipprotoMPTCP && gerr == nil && cur == v {
				return nil
			}
			return fmt.Errorf("%s %d: %w", name, v, err)
		}
		return nil
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	if e.GetFamily() == unix.AF_INET6 {
		if err := setInt(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, b2i(e.GetV6Only()), "IPV6_V6ONLY"); err != nil {
			return fail(err)
		}
	}
	if dev := o.GetSoBoundDev(); dev != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev); err != nil {
			return fail(fmt.Errorf("SO_BINDTODEVICE %s: %w", dev, err))
		}
	}
	for _, x := range []struct {
		opt  int
		on   bool
		name string
	}{{unix.SO_REUSEADDR, o.GetReuseaddr(), "SO_REUSEADDR"}, {unix.SO_REUSEPORT, o.GetSoReuseport(), "SO_REUSEPORT"},
		{unix.SO_BROADCAST, o.GetSoBroadcast(), "SO_BROADCAST"}, {unix.SO_KEEPALIVE, o.GetSoKeepalive(), "SO_KEEPALIVE"},
		{unix.SO_DONTROUTE, o.GetSoDontroute(), "SO_DONTROUTE"}} {
		if err := setInt(unix.SOL_SOCKET, x.opt, b2i(x.on), x.name); err != nil {
			return fail(err)
		}
	}
	if o.GetSoOobinline() != 0 {
		if err := setInt(unix.SOL_SOCKET, unix.SO_OOBINLINE, 1, "SO_OOBINLINE"); err != nil {
			return fail(err)
		}
	}
	if o.SoLinger != nil {
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(o.GetSoLinger())}); err != nil {
			return fail(fmt.Errorf("SO_LINGER: %w", err))
		}
	}
	if ip := e.GetIpOpts(); ip != nil {
		if err := setInt(unix.SOL_IP, unix.IP_FREEBIND, b2i(ip.GetFreebind()), "IP_FREEBIND"); err != nil {
			return fail(err)
		}
		tosLevel, tos, ttl, pktinfo := unix.IPPROTO_IP, unix.IP_TOS, unix.IP_TTL, unix.IP_PKTINFO
		if e.GetFamily() == unix.AF_INET6 {
			tosLevel, tos, ttl, pktinfo = unix.IPPROTO_IPV6, unix.IPV6_TCLASS, unix.IPV6_UNICAST_HOPS, unix.IPV6_RECVPKTINFO
		}
		if ip.GetPktinfo() {
			if err := setInt(tosLevel, pktinfo, 1, "PKTINFO"); err != nil {
				return fail(err)
			}
		}
		if ip.Tos != nil {
			if err := setInt(tosLevel, tos, int(ip.GetTos()), "TOS"); err != nil {
				return fail(err)
			}
		}
		if ip.Ttl != nil {
			if err := setInt(tosLevel, ttl, int(ip.GetTtl()), "TTL"); err != nil {
				return fail(err)
			}
		}
	}
	if t := e.GetTcpOpts(); t != nil && e.GetType() == unix.SOCK_STREAM {
		for _, x := range []struct {
			opt  int
			v    int
			set  bool
			name string
		}{{unix.TCP_NODELAY, b2i(t.GetNodelay()), true, "TCP_NODELAY"}, {unix.TCP_CORK, b2i(t.GetCork()), true, "TCP_CORK"},
			{unix.TCP_KEEPCNT, int(t.GetKeepcnt()), t.GetKeepcnt() != 0, "TCP_KEEPCNT"},
			{unix.TCP_KEEPIDLE, int(t.GetKeepidle()), t.GetKeepidle() != 0, "TCP_KEEPIDLE"},
			{unix.TCP_KEEPINTVL, int(t.GetKeepintvl()), t.GetKeepintvl() != 0, "TCP_KEEPINTVL"}} {
			if x.set {
				if err := setInt(unix.IPPROTO_TCP, x.opt, x.v, x.name); err != nil {
					return fail(err)
				}
			}
		}
	}
	src := inetSockaddr(e.GetFamily(), e.GetSrcAddr(), e.GetSrcPort())
	switch {
	case stream != nil:
		if err := repairMode(fd, 1); err != nil {
			return fail(err)
		}
		if err := restoreStream(fd, e, stream); err != nil {
			return fail(err)
		}
		k.repaired = append(k.repaired, tcpSock{fd: fd, what: what, reuse: o.GetReuseaddr(), conn: connOf(e), state: e.GetState()})
	case e.GetType() == unix.SOCK_STREAM && tcpConnected(e.GetState()):
		// --tcp-close, or a dump made with it: the socket is made
		// closed, its options set, as CRIU does.
		log.Infof("%s: restored closed (--tcp-close)", what)
	case e.GetSrcPort() != 0 || !allZero(e.GetSrcAddr()):
		// A listener shares its port with the connections it accepted,
		// which may be made first: SO_REUSEADDR lets it bind next to
		// them (never next to another listener), until it listens.
		if e.GetState() == tcpListen && !o.GetReuseaddr() {
			if err := setInt(unix.SOL_SOCKET, unix.SO_REUSEADDR, 1, "SO_REUSEADDR"); err != nil {
				return fail(err)
			}
		}
		if err := unix.Bind(fd, src); err != nil {
			if errors.Is(err, unix.EADDRINUSE) && onlyTimeWait(e.GetSrcPort()) {
				return fail(fmt.Errorf("bind to %s: %w (only connections in TIME-WAIT hold the port: a socket without SO_REUSEADDR cannot bind next to them until they end, within a minute; restore again then)", addrString(src), err))
			}
			return fail(fmt.Errorf("bind to %s: %w (the address is not on this machine, or the port is taken)", addrString(src), err))
		}
	}
	if e.GetState() == tcpListen {
		if err := unix.Listen(fd, int(e.GetBacklog())); err != nil {
			return fail(fmt.Errorf("listen: %w", err))
		}
		if !o.GetReuseaddr() {
			if err := setInt(unix.SOL_SOCKET, unix.SO_REUSEADDR, 0, "SO_REUSEADDR"); err != nil {
				return fail(err)
			}
		}
	}
	if e.GetType() == unix.SOCK_DGRAM && e.GetDstPort() != 0 {
		dst := inetSockaddr(e.GetFamily(), e.GetDstAddr(), e.GetDstPort())
		if err := unix.Connect(fd, dst); err != nil {
			return fail(fmt.Errorf("connect to %s: %w", addrString(dst), err))
		}
	}
	if err := setUnixOpts(fd, o); err != nil {
		return fail(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(e.GetFlags()&(unix.O_NONBLOCK|unix.O_ASYNC))); err != nil {
		return fail(fmt.Errorf("F_SETFL: %w", err))
	}
	return f, nil
}

func allZero(a []uint32) bool {
	for _, w := range a {
		if w != 0 {
			return false
		}
	}
	return true
}

func (*inetKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetIsk().GetFown(), e.GetIsk().GetFlags()
}

func (*inetKind) Describe(e *pb.FileEntry) string { return describeInetEntry(e.GetIsk()) }

// describeInetEntry names a socket of the images as ss does.
func describeInetEntry(e *pb.InetSkEntry) string {
	name := "UDP"
	switch {
	case e.GetProto() == ipprotoMPTCP:
		name = "MPTCP"
	case e.GetType() == unix.SOCK_STREAM:
		name = "TCP"
	}
	s := name + " " + addrString(inetSockaddr(e.GetFamily(), e.GetSrcAddr(), e.GetSrcPort()))
	if e.GetDstPort() != 0 {
		s += " -> " + addrString(inetSockaddr(e.GetFamily(), e.GetDstAddr(), e.GetDstPort()))
	}
	if e.GetState() == tcpListen {
		s += " listening"
	}
	return s
}

// procNetPeer is the remote address of TCP socket ino as the task's
// /proc/PID/net/tcp (tcp6) lists it, printed as ss does; "" if absent.
func procNetPeer(pid int, ino uint64, v6 bool) string {
	name := "tcp"
	if v6 {
		name = "tcp6"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, name))
	if err != nil {
		return ""
	}
	want := strconv.FormatUint(ino, 10)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[9] != want {
			continue
		}
		host, port, ok := strings.Cut(f[2], ":")
		raw, err := hex.DecodeString(host)
		p, perr := strconv.ParseUint(port, 16, 16)
		if !ok || err != nil || perr != nil || (len(raw) != 4 && len(raw) != 16) {
			return ""
		}
		// The address is printed as 32-bit words in host order.
		for i := 0; i+4 <= len(raw); i += 4 {
			binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
		}
		a, _ := netip.AddrFromSlice(raw)
		return addrString(sockaddrOf(netip.AddrPortFrom(a, uint16(p))))
	}
	return ""
}

// sockaddrOf turns an address and port into a sockaddr.
func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// onlyTimeWait tells whether the sockets of this network namespace on
// local port port (/proc/net/tcp and tcp6) are all in TIME-WAIT: the
// kernel then refuses the bind of a socket without SO_REUSEADDR, though
// nothing listens there.
func onlyTimeWait(port uint32) bool {
	suffix := fmt.Sprintf(":%04X", port)
	found := false
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 || !strings.HasSuffix(f[1], suffix) {
				continue
			}
			if f[3] != "06" {
				return false
			}
			found = true
		}
	}
	return found
}
