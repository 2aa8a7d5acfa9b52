package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/netlock"
	"github.com/gockpt/gockpt/internal/par"
	pb "github.com/gockpt/gockpt/proto"
)

// Established TCP connections (--tcp-established) are kept through the
// kernel's repair mode (TCP_REPAIR), as CRIU keeps them: while the tree
// is frozen and the network lock drops the connection's packets, dump
// puts the socket in repair mode, reads its sequence numbers, queues,
// negotiated options and window, and takes it out again; it goes back
// into repair mode just before the dump kills the tree, so that it closes
// without a word to the peer. Restore makes a socket in repair mode,
// gives it the same sequence numbers, addresses, options, queues and
// window, and lets it go (repair off) just before the tree runs again.
//
// What the stream image (tcp-stream-INO.img) holds is CRIU's: the entry,
// then the receive queue's bytes, then the send queue's. A FIN is not a
// byte of either queue: the socket's state tells which FINs were sent
// and received, and restore makes them again (shutdown in repair mode for
// ours; a forged packet from the peer for theirs).

// TCP states (include/net/tcp_states.h).
const (
	tcpSynSent   = 2
	tcpFinWait1  = 4
	tcpFinWait2  = 5
	tcpCloseWait = 8
	tcpLastAck   = 9
	tcpClosing   = 11
)

// Queues of TCP_REPAIR_QUEUE.
const (
	tcpNoQueue   = 0
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// TCPI_OPT_* of tcp_info's options.
const (
	tcpiOptTimestamps = 1
	tcpiOptSack       = 2
	tcpiOptWscale     = 4
)

// tcpConnected tells the states of a connection repair mode keeps: one
// established, or closing on one side or both.
func tcpConnected(state uint32) bool {
	switch state {
	case tcpEstablished, tcpFinWait1, tcpFinWait2, tcpCloseWait, tcpLastAck, tcpClosing:
		return true
	}
	return false
}

// tcpFins says which FINs a state has seen: ours sent (and acked), the
// peer's received; theirsFirst tells, when both are, which came first.
func tcpFins(state uint32) (ours, oursAcked, theirs, theirsFirst bool) {
	switch state {
	case tcpFinWait1:
		return true, false, false, false
	case tcpFinWait2:
		return true, true, false, false
	case tcpClosing:
		return true, false, true, false
	case tcpCloseWait:
		return false, false, true, true
	case tcpLastAck:
		return true, false, true, true
	}
	return false, false, false, false
}

// tcpSock is a socket in repair mode: dump's copy of a task's socket, or
// restore's new one. fd is gockpt's.
type tcpSock struct {
	fd    int
	what  string
	reuse bool // SO_REUSEADDR, which leaving repair mode clears
	conn  netlock.Conn
	state uint32
	ino   uint64
	// own: the fd is the kind's to close (dump's copies); restore's
	// belong to the Opener.
	own   bool
	ended bool // out of repair mode again
}

// tcpStreamFile is where the stream of socket inode ino is kept.
func tcpStreamFile(ino uint32) string { return fmt.Sprintf("tcp-stream-%x.img", ino) }

// connOf is the connection of an image entry, as the lock matches it.
func connOf(e *pb.InetSkEntry) netlock.Conn {
	return netlock.Conn{Local: addrPortOf(inetSockaddr(e.GetFamily(), e.GetSrcAddr(), e.GetSrcPort())),
		Remote: addrPortOf(inetSockaddr(e.GetFamily(), e.GetDstAddr(), e.GetDstPort()))}
}

// connOfFd is the connection of a connected socket, as its names say.
func connOfFd(fd int) (netlock.Conn, bool) {
	l, err1 := unix.Getsockname(fd)
	r, err2 := unix.Getpeername(fd)
	if err1 != nil || err2 != nil {
		return netlock.Conn{}, false
	}
	return netlock.Conn{Local: addrPortOf(l), Remote: addrPortOf(r)}, true
}

// addrPortOf is an IPv4 or IPv6 sockaddr as an address and port.
func addrPortOf(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

func repairMode(fd int, on int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, on); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("repair mode (TCP_REPAIR): %w: it needs CAP_NET_ADMIN in the socket's network namespace", err)
		}
		return fmt.Errorf("repair mode (TCP_REPAIR %d): %w", on, err)
	}
	return nil
}

func repairQueue(fd, q int) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE %d: %w", q, err)
	}
	return nil
}

// tcpRepairWindow is struct tcp_repair_window.
type tcpRepairWindow struct{ sndWl1, sndWnd, maxWindow, rcvWnd, rcvWup uint32 }

func (w tcpRepairWindow) bytes() []byte {
	b := make([]byte, 20)
	for i, v := range []uint32{w.sndWl1, w.sndWnd, w.maxWindow, w.rcvWnd, w.rcvWup} {
		binary.NativeEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// TCPRef is an established connection of the tree: the first fd that
// holds it, its socket's inode, and the connection as the lock matches it.
type TCPRef struct {
	Pid, Fd int
	Ino     uint64
	Conn    netlock.Conn
	dup     int // gockpt's copy, which ReadStreams takes over
}

// ReadStreams reads every connection of refs, each in repair mode for
// the few calls that need it: sequence numbers, the send queue, the
// window. The caller has the tree's threads parked (ptrace Park) and the
// network locked: should gockpt die meanwhile, no thread runs its own
// code before the watchdog has taken the sockets out of repair mode, and
// no packet changes the connections. What is read waits for Dump, by
// inode.
func (d *Dumper) ReadStreams(refs []TCPRef) error {
	k := d.kinds.byType[pb.FdTypes_INETSK].(*inetKind)
	if k.pre == nil {
		k.pre, k.preEntry = map[uint64]*tcpStream{}, map[uint64]*pb.InetSkEntry{}
	}
	// Two at a time: each is some fifty syscalls. The socket's image
	// entry is read here too, while the copy is at hand.
	socks := make([]tcpSock, len(refs))
	streams := make([]*tcpStream, len(refs))
	entries := make([]*pb.InetSkEntry, len(refs))
	errs := make([]error, len(refs))
	par.Each(len(refs), 2, func(i int) {
		socks[i], streams[i], errs[i] = readStream(d, refs[i])
		if errs[i] == nil {
			if entries[i], _, errs[i] = inetEntry(socks[i].fd); errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", socks[i].what, errs[i])
			}
		}
	})
	for i := range refs {
		if socks[i].what != "" {
			k.repaired = append(k.repaired, socks[i])
		}
		if streams[i] != nil && entries[i] != nil {
			k.pre[refs[i].Ino] = streams[i]
			k.preEntry[refs[i].Ino] = entries[i]
		}
	}
	if d.Checker.readConns == nil {
		d.Checker.readConns = map[uint64]bool{}
	}
	for ino := range k.pre {
		d.Checker.readConns[ino] = true
	}
	return errors.Join(errs...)
}

// readStream reads one connection; the socket it returns (what set) is
// gockpt's copy, out of repair mode again, even when reading failed.
func readStream(d *Dumper, r TCPRef) (tcpSock, *tcpStream, error) {
	keep := r.dup
	if keep < 0 {
		var err error
		if keep, err = d.Checker.dup(r.Pid, r.Fd); err != nil {
			return tcpSock{}, nil, err
		}
	}
	what := fmt.Sprintf("task %d fd %d: TCP %s -> %s", r.Pid, r.Fd, r.Conn.Local, r.Conn.Remote)
	fail := func(err error) error { return fmt.Errorf("%s: %w", what, err) }
	reuse, _ := unix.GetsockoptInt(keep, unix.SOL_SOCKET, unix.SO_REUSEADDR)
	state := tcpState(keep)
	if d.OnRepair != nil {
		// The watchdog hears of it first: if gockpt dies from here on,
		// it takes the socket out of repair mode.
		if err := d.OnRepair(r.Pid, r.Fd, r.Ino, reuse != 0); err != nil {
			unix.Close(keep)
			return tcpSock{}, nil, err
		}
	}
	// The queues' lengths, the options and the receive queue's bytes
	// need no repair mode.
	q, err := readQueues(keep, state)
	if err != nil {
		unix.Close(keep)
		return tcpSock{}, nil, fail(err)
	}
	if err := repairMode(keep, 1); err != nil {
		unix.Close(keep)
		return tcpSock{}, nil, fail(err)
	}
	sock := tcpSock{fd: keep, ino: r.Ino, what: what, reuse: reuse != 0, conn: r.Conn, state: state, own: true}
	st, err := readRepaired(keep, q)
	// Out of repair mode again at once. The tree is frozen and the lock
	// holds: the connection stays as it was read. The socket goes back
	// into repair mode just before a dump kills the tree (EnterRepair),
	// so that it closes without a word to the peer.
	sock.ended = true
	if rerr := sock.repairDone(false); err == nil {
		err = rerr
	}
	if err != nil {
		return sock, nil, fail(err)
	}
	st.ino = uint32(r.Ino)
	return sock, st, nil
}

// CloseRepaired lets go of gockpt's copies of the connections once the
// tree is killed: the dying tasks hold the last references, and the
// sockets are gone (closed in repair mode, silently) once they are dead.
func (d *Dumper) CloseRepaired() {
	k := d.kinds.byType[pb.FdTypes_INETSK].(*inetKind)
	for i := range k.repaired {
		if s := &k.repaired[i]; s.own && s.fd >= 0 {
			unix.Close(s.fd)
			s.fd = -1
		}
	}
}

// TCPDumped is how many established connections the dump read.
func (d *Dumper) TCPDumped() int {
	return len(d.kinds.byType[pb.FdTypes_INETSK].(*inetKind).repaired)
}

// EnterRepair puts the dumped connections back into repair mode before
// the dump kills the tree: they close without a word to their peers.
func (d *Dumper) EnterRepair() error {
	k := d.kinds.byType[pb.FdTypes_INETSK].(*inetKind)
	var errs []error
	for i := range k.repaired {
		s := &k.repaired[i]
		if err := repairMode(s.fd, 1); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
			continue
		}
		s.ended = false
	}
	return errors.Join(errs...)
}

// tcpStream is one connection's stream: the entry and both queues.
type tcpStream struct {
	ino     uint32
	e       *pb.TcpStreamEntry
	in, out []byte
}

// tcpQueues is what readQueues finds out of repair mode.
type tcpQueues struct {
	state             uint32
	inq, outq, unsent int
	in                []byte
	optMask           uint32
	wscale            byte
	mss, timestamp    int
}

// readQueues reads, out of repair mode, the queues' lengths, the receive
// queue's bytes, the negotiated options and the timestamp.
func readQueues(fd int, state uint32) (*tcpQueues, error) {
	q := &tcpQueues{state: state}
	ours, oursAcked, _, _ := tcpFins(state)
	var err error
	if q.inq, err = unix.IoctlGetInt(fd, unix.SIOCINQ); err != nil {
		return nil, fmt.Errorf("SIOCINQ: %w", err)
	}
	if q.outq, err = unix.IoctlGetInt(fd, unix.SIOCOUTQ); err != nil {
		return nil, fmt.Errorf("SIOCOUTQ: %w", err)
	}
	if q.unsent, err = unix.IoctlGetInt(fd, unix.SIOCOUTQNSD); err != nil {
		return nil, fmt.Errorf("SIOCOUTQNSD: %w", err)
	}
	// A FIN we sent and the peer has not acked yet counts in the send
	// queue's length (and in the unsent part, until it goes out), but it
	// is not a byte of it.
	if ours && !oursAcked && q.outq > 0 {
		q.outq--
		if q.unsent > 0 {
			q.unsent--
		}
	}
	if q.in, err = peekTCPQueue(fd, q.inq, "receive"); err != nil {
		return nil, err
	}
	info := make([]byte, 8)
	if _, err := getsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_INFO, info); err != nil {
		return nil, fmt.Errorf("TCP_INFO: %w", err)
	}
	// tcpi_options, then the window scales: snd in the low nibble.
	q.optMask, q.wscale = uint32(info[5]), info[6]
	if q.mss, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG); err != nil {
		return nil, fmt.Errorf("TCP_MAXSEG: %w", err)
	}
	if q.optMask&tcpiOptTimestamps != 0 {
		if q.timestamp, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP); err != nil {
			return nil, fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
	}
	return q, nil
}

// readRepaired reads what only repair mode shows: the sequence numbers,
// the send queue's bytes and the window.
func readRepaired(fd int, q *tcpQueues) (*tcpStream, error) {
	seq := func(which int) (uint32, error) {
		if err := repairQueue(fd, which); err != nil {
			return 0, err
		}
		v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
		if err != nil {
			return 0, fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
		}
		return uint32(v), nil
	}
	inSeq, err := seq(tcpRecvQueue)
	if err != nil {
		return nil, err
	}
	outSeq, err := seq(tcpSendQueue)
	if err != nil {
		return nil, err
	}
	out, err := peekTCPQueue(fd, q.outq, "send")
	if err != nil {
		return nil, err
	}
	if err := repairQueue(fd, tcpNoQueue); err != nil {
		return nil, err
	}
	e := &pb.TcpStreamEntry{InqLen: proto.Uint32(uint32(len(q.in))), InqSeq: proto.Uint32(inSeq),
		OutqLen: proto.Uint32(uint32(len(out))), OutqSeq: proto.Uint32(outSeq), OptMask: proto.Uint32(q.optMask),
		SndWscale: proto.Uint32(uint32(q.wscale & 0xf)), RcvWscale: proto.Uint32(uint32(q.wscale >> 4)),
		MssClamp: proto.Uint32(uint32(q.mss)), UnsqLen: proto.Uint32(uint32(q.unsent))}
	if q.optMask&tcpiOptTimestamps != 0 {
		e.Timestamp = proto.Uint32(uint32(q.timestamp))
	}
	w := make([]byte, 20)
	if n, err := getsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, w); err != nil || n != 20 {
		return nil, fmt.Errorf("TCP_REPAIR_WINDOW: %v", err)
	}
	get := func(i int) *uint32 { return proto.Uint32(binary.NativeEndian.Uint32(w[4*i:])) }
	e.SndWl1, e.SndWnd, e.MaxWindow, e.RcvWnd, e.RcvWup = get(0), get(1), get(2), get(3), get(4)
	return &tcpStream{e: e, in: q.in, out: out}, nil
}

// peekTCPQueue reads n bytes of the queue chosen with TCP_REPAIR_QUEUE
// without taking them. The receive queue is peeked from its start (the
// socket's peek offset is put back after); the send queue always is.
func peekTCPQueue(fd, n int, which string) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, n)
	if which == "receive" {
		orig, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
		if err != nil {
			return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
			return nil, fmt.Errorf("set SO_PEEK_OFF: %w", err)
		}
		defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, orig)
		got := 0
		for got < n {
			m, _, err := unix.Recvfrom(fd, buf[got:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err != nil || m == 0 {
				return nil, fmt.Errorf("peek the %s queue (%d of %d bytes): %v", which, got, n, err)
			}
			got += m
		}
		return buf, nil
	}
	m, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil || m != n {
		return nil, fmt.Errorf("peek the %s queue (%d of %d bytes): %v", which, m, n, err)
	}
	return buf, nil
}

// writeStreams writes each stream's image.
// One image per connection, as CRIU has it: with many connections they
// are written several at a time.
func (k *inetKind) writeStreams(dir *images.Dir) error {
	errs := make([]error, len(k.streams))
	par.Each(len(k.streams), 4, func(i int) {
		s := k.streams[i]
		errs[i] = dir.WriteSmall(tcpStreamFile(s.ino), images.KindTCPStream, s.e, s.in, s.out)
	})
	return errors.Join(errs...)
}

// readStream reads the stream image of socket ino.
func loadStream(dir *images.Dir, ino uint32) (*tcpStream, error) {
	r, err := dir.Open(tcpStreamFile(ino))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	e := &pb.TcpStreamEntry{}
	extra, err := r.ReadEntry(e)
	if err != nil {
		return nil, err
	}
	if uint64(len(extra)) != uint64(e.GetInqLen())+uint64(e.GetOutqLen()) {
		return nil, fmt.Errorf("%s: %d bytes of queues, the entry says %d and %d", tcpStreamFile(ino), len(extra), e.GetInqLen(), e.GetOutqLen())
	}
	if e.GetUnsqLen() > e.GetOutqLen() {
		return nil, fmt.Errorf("%s: %d unsent bytes in a send queue of %d", tcpStreamFile(ino), e.GetUnsqLen(), e.GetOutqLen())
	}
	return &tcpStream{ino: ino, e: e, in: extra[:e.GetInqLen()], out: extra[e.GetInqLen():]}, nil
}

// restoreStream makes fd (a new socket in repair mode, options set) the
// connection e held: sequence numbers, addresses, options, queues,
// window and FINs. It stays in repair mode until EndRepair.
func restoreStream(fd int, e *pb.InetSkEntry, s *tcpStream) error {
	st := s.e
	state := e.GetState()
	ours, oursAcked, theirs, theirsFirst := tcpFins(state)
	inSeq, outSeq := st.GetInqSeq(), st.GetOutqSeq()
	if theirs {
		inSeq-- // their FIN is made again below
	}
	if ours {
		outSeq--
	}
	setSeq := func(q int, v uint32) error {
		if err := repairQueue(fd, q); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, int(v)); err != nil {
			return fmt.Errorf("TCP_QUEUE_SEQ %d: %w", v, err)
		}
		return nil
	}
	if err := setSeq(tcpRecvQueue, inSeq-st.GetInqLen()); err != nil {
		return err
	}
	if err := setSeq(tcpSendQueue, outSeq-st.GetOutqLen()); err != nil {
		return err
	}
	src := inetSockaddr(e.GetFamily(), e.GetSrcAddr(), e.GetSrcPort())
	if err := unix.Bind(fd, src); err != nil {
		return fmt.Errorf("bind to %s: %w (the address is not on this machine, or another socket holds this connection)", addrString(src), err)
	}
	dst := inetSockaddr(e.GetFamily(), e.GetDstAddr(), e.GetDstPort())
	if err := unix.Connect(fd, dst); err != nil {
		return fmt.Errorf("connect to %s in repair mode: %w", addrString(dst), err)
	}
	var opts []byte
	opt := func(code, val uint32) {
		opts = binary.NativeEndian.AppendUint32(opts, code)
		opts = binary.NativeEndian.AppendUint32(opts, val)
	}
	mask := st.GetOptMask()
	if mask&tcpiOptSack != 0 {
		opt(unix.TCPOPT_SACK_PERMITTED, 0)
	}
	if mask&tcpiOptWscale != 0 {
		opt(unix.TCPOPT_WINDOW, st.GetSndWscale()|st.GetRcvWscale()<<16)
	}
	if mask&tcpiOptTimestamps != 0 {
		opt(unix.TCPOPT_TIMESTAMP, 0)
	}
	opt(unix.TCPOPT_MAXSEG, st.GetMssClamp())
	if err := setsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, opts); err != nil {
		return fmt.Errorf("TCP_REPAIR_OPTIONS: %w", err)
	}
	if mask&tcpiOptTimestamps != 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, int(st.GetTimestamp())); err != nil {
			return fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
	}
	// The queues may be larger than a new socket's buffers.
	if need := 2*len(s.in) + 65536; len(s.in) > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, need); err != nil {
			return fmt.Errorf("SO_RCVBUFFORCE %d: %w", need, err)
		}
	}
	if need := 2*len(s.out) + 65536; len(s.out) > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, need); err != nil {
			return fmt.Errorf("SO_SNDBUFFORCE %d: %w", need, err)
		}
	}
	if err := fillQueue(fd, tcpRecvQueue, s.in); err != nil {
		return fmt.Errorf("receive queue: %w", err)
	}
	// The bytes sent and not acked yet are put back as sent: the peer may
	// ack them. The unsent ones go through the usual path, with repair
	// mode off for that moment.
	sent := len(s.out) - int(st.GetUnsqLen())
	if err := fillQueue(fd, tcpSendQueue, s.out[:sent]); err != nil {
		return fmt.Errorf("send queue: %w", err)
	}
	if st.SndWnd != nil {
		w := tcpRepairWindow{st.GetSndWl1(), st.GetSndWnd(), st.GetMaxWindow(), st.GetRcvWnd(), st.GetRcvWup()}
		// The window was last updated at rcv_wup, which may count the
		// peer's FIN, not made yet.
		if int32(w.rcvWup-inSeq) > 0 {
			w.rcvWup = inSeq
		}
		if err := setsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, w.bytes()); err != nil {
			return fmt.Errorf("TCP_REPAIR_WINDOW: %w", err)
		}
	}
	// The window the peer advertised, in its own scale.
	win := uint16(0xffff)
	if st.SndWnd != nil {
		win = uint16(min(st.GetSndWnd()>>st.GetSndWscale(), 0xffff))
	}
	if theirs && theirsFirst {
		if err := forgeFin(fd, e, inSeq, win); err != nil {
			return err
		}
	}
	finDone := false
	if rest := s.out[sent:]; len(rest) > 0 {
		if err := repairMode(fd, unix.TCP_REPAIR_OFF_NO_WP); err != nil {
			return err
		}
		err := sendAll(fd, rest)
		if err == nil && ours {
			// Our FIN waits behind them, unsent: it goes the usual
			// way too.
			if err = unix.Shutdown(fd, unix.SHUT_WR); err != nil {
				err = fmt.Errorf("shutdown (our FIN): %w", err)
			}
			finDone = true
		}
		if rerr := repairMode(fd, 1); err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("unsent data: %w", err)
		}
	}
	if ours && !finDone {
		if err := repairQueue(fd, tcpSendQueue); err != nil {
			return err
		}
		// In repair mode the FIN is queued as sent, not sent.
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			return fmt.Errorf("shutdown (our FIN): %w", err)
		}
	}
	if oursAcked {
		if err := forgeAck(fd, e, inSeq, win); err != nil {
			return err
		}
	}
	if theirs && !theirsFirst {
		if err := forgeFin(fd, e, inSeq, win); err != nil {
			return err
		}
	}
	if err := repairQueue(fd, tcpNoQueue); err != nil {
		return err
	}
	if got := tcpState(fd); got != state {
		return fmt.Errorf("the connection is %s after repair, not %s", tcpStateName(got), tcpStateName(state))
	}
	return nil
}

func tcpState(fd int) uint32 {
	ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0
	}
	return uint32(ti.State)
}

func tcpStateName(s uint32) string {
	if s > 0 && int(s) < len(tcpStates) {
		return tcpStates[s]
	}
	return fmt.Sprintf("state %d", s)
}

// fillQueue writes b into a queue of a socket in repair mode: the receive
// queue as data arrived, the send queue as data sent.
func fillQueue(fd, q int, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := repairQueue(fd, q); err != nil {
		return err
	}
	return sendAll(fd, b)
}

func sendAll(fd int, b []byte) error {
	const chunk = 64 << 10
	for len(b) > 0 {
		n := min(len(b), chunk)
		m, err := unix.SendmsgN(fd, b[:n], nil, nil, unix.MSG_DONTWAIT)
		if err != nil {
			return fmt.Errorf("write %d bytes: %w", n, err)
		}
		b = b[m:]
	}
	return nil
}

// repairDone takes a socket out of repair mode. With probe, a window
// probe goes to the peer, which answers with where it is, and whatever
// waits to be sent goes.
func (s tcpSock) repairDone(probe bool) error {
	on := unix.TCP_REPAIR_OFF_NO_WP
	if probe {
		on = 0
	}
	if err := repairMode(s.fd, on); err != nil {
		return fmt.Errorf("%s: %w", s.what, err)
	}
	// Leaving repair mode clears SO_REUSEADDR.
	if s.reuse {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("%s: SO_REUSEADDR: %w", s.what, err)
		}
	}
	return nil
}

// endRepair takes every socket in repair mode out of it, each once, and
// says what failed.
func (k *inetKind) endRepair(probe bool) error {
	var errs []error
	for i := range k.repaired {
		s := &k.repaired[i]
		if s.ended {
			continue
		}
		s.ended = true
		if err := s.repairDone(probe); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		log.Errorf("leaving repair mode: %v", errors.Join(errs...))
	}
	return errors.Join(errs...)
}

// EndRepair takes the established connections dump put in repair mode
// out of it (after a dump that lets the tree run, or failed), with a
// window probe: the peer answers and the connection goes on at once.
func (d *Dumper) EndRepair() error {
	return d.kinds.byType[pb.FdTypes_INETSK].(*inetKind).endRepair(true)
}

// EndRepair lets the connections restore made go, just before the tree
// runs.
func (o *Opener) EndRepair() error {
	return o.kinds.byType[pb.FdTypes_INETSK].(*inetKind).endRepair(true)
}

// TCPConnections lists the established connections of the tree's tasks
// (each socket once, with the first fd that holds it), for the network
// lock and ReadStreams, before any is dumped.
func (d *Dumper) TCPConnections() ([]TCPRef, error) {
	// The tree's TCP sockets by their protocol's name (no copy yet), each
	// once...
	var cands []TCPRef
	seen := map[uint64]bool{}
	for _, pid := range d.Checker.Tasks {
		fds, err := ListFds(pid)
		if err != nil {
			continue // a zombie, or gone: the dump finds out
		}
		for _, fd := range fds {
			link := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
			var st unix.Stat_t
			if err := unix.Stat(link, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK || seen[st.Ino] {
				continue
			}
			seen[st.Ino] = true
			if p := sockProto(link); p == "TCP" || p == "TCPv6" {
				cands = append(cands, TCPRef{Pid: pid, Fd: fd, Ino: st.Ino, dup: -1})
			}
		}
	}
	// ...then, two at a time, a copy of each to see which are connected
	// and between what; ReadStreams reads them through these copies.
	errs := make([]error, len(cands))
	par.Each(len(cands), 2, func(i int) {
		r := &cands[i]
		dup, err := d.Checker.dup(r.Pid, r.Fd)
		if err != nil {
			errs[i] = err
			return
		}
		c, ok := connOfFd(dup)
		if !ok || !tcpConnected(tcpState(dup)) {
			unix.Close(dup)
			return
		}
		r.dup, r.Conn = dup, c
	})
	var out []TCPRef
	for _, r := range cands {
		if r.dup >= 0 {
			out = append(out, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		CloseRefs(out)
		return nil, err
	}
	return out, nil
}

// CloseRefs lets go of the copies TCPConnections made, when ReadStreams
// will not (a lock that could not be taken).
func CloseRefs(refs []TCPRef) {
	for _, r := range refs {
		if r.dup >= 0 {
			unix.Close(r.dup)
		}
	}
}

// TCPConnections lists the connections restore makes in repair mode, for
// the network lock, before any is made.
func (o *Opener) TCPConnections() []netlock.Conn {
	if o.TCPClose {
		return nil
	}
	var out []netlock.Conn
	for _, fe := range o.Files {
		if o.streamed(fe) {
			out = append(out, connOf(fe.GetIsk()))
		}
	}
	return out
}

// CheckTCP refuses, before restore makes any task, images holding
// established connections restore was not told to make: CRIU's restore
// wants --tcp-established for them too.
func (o *Opener) CheckTCP() error {
	if o.TCPEstablished || o.TCPClose {
		return nil
	}
	for _, fe := range o.Files {
		if o.streamed(fe) {
			return fmt.Errorf("the images hold the established connection %s: restore it with --tcp-established, or closed with --tcp-close", describeInetEntry(fe.GetIsk()))
		}
	}
	return nil
}

// streamed tells a file entry of an established connection whose stream
// the images hold (one dumped without --tcp-close).
func (o *Opener) streamed(fe *pb.FileEntry) bool {
	e := fe.GetIsk()
	return fe.GetType() == pb.FdTypes_INETSK && e.GetType() == unix.SOCK_STREAM && tcpConnected(e.GetState()) && o.Dir.Exists(tcpStreamFile(e.GetIno()))
}

// stream is the stream image of connection e; without one (a dump made
// with --tcp-close) the connection is made closed.
func (o *Opener) stream(e *pb.InetSkEntry) (*tcpStream, error) {
	if !o.Dir.Exists(tcpStreamFile(e.GetIno())) {
		return nil, nil
	}
	return loadStream(o.Dir, e.GetIno())
}
