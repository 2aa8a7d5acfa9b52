package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// unixKind is an AF_UNIX socket of any type: stream, dgram or seqpacket.
// Dump reads what sock_diag tells of it (name, peer, backlog, shutdown),
// its options through a copy of the fd, and the data queued to it by
// peeking (MSG_PEEK at SO_PEEK_OFF), so the queue stays as it was. The
// data goes in sk-queues.img, each packet with its sender for a datagram.
//
// Restore builds every unix socket of the tree in gockpt at once, the
// first time one is asked for: pairs connected to each other come from
// socketpair, names are bound (a deleted name, or an accepted socket's,
// by binding and unlinking), listeners listen, queues are refilled from
// the socket at the other end, connections waiting in a backlog connect
// again, and shutdowns and options are set last.
type unixKind struct {
	kindBase
	// dump: the packets peeked, in order; the sockets outside the tree
	// written as peers (--ext-unix-sk).
	packets []unixPacket
	externs map[uint64]bool
	// dumped are the sockets written to files.img; pending, those
	// waiting for their peer to be written first.
	dumped  map[uint64]bool
	pending map[uint64][]*pb.FileEntry
	// restore
	built   bool
	err     error
	socks   map[uint32]*os.File // by file id
	handed  map[uint32]bool
	loaded  map[uint32][]unixPacket // by the id of the socket they are queued to
	tempFds []int
}

type unixPacket struct {
	entry *pb.SkPacketEntry
	data  []byte
}

func newUnixKind() Kind {
	return &unixKind{socks: map[uint32]*os.File{}, handed: map[uint32]bool{}, loaded: map[uint32][]unixPacket{}, externs: map[uint64]bool{},
		dumped: map[uint64]bool{}, pending: map[uint64][]*pb.FileEntry{}}
}

// uskExtern marks a socket outside the tree (CRIU's USK_EXTERN): an entry
// with no fd, the peer a dgram socket reconnects to by name.
const uskExtern = 1

// Socket states of include/net/tcp_states.h as unix sockets use them.
const (
	unixEstablished = 1
	unixClose       = 7
	unixListen      = 10
)

// Shutdown bits of the kernel's sk_shutdown.
const (
	rcvShutdown  = 1
	sendShutdown = 2
)

func (*unixKind) Type() pb.FdTypes { return pb.FdTypes_UNIXSK }

// Match takes sockets whose protocol the socket file names UNIX or
// UNIX-STREAM.
func (*unixKind) Match(s *fdState) bool {
	return strings.HasPrefix(s.target, "socket:[") && strings.HasPrefix(s.sockProto(), "UNIX")
}

// sockProto is the protocol name sockfs gives a socket file: "UNIX",
// "UNIX-STREAM", "TCP", "UDPv6", "NETLINK".
func sockProto(link string) string {
	b := make([]byte, 32)
	n, err := unix.Getxattr(link, "system.sockprotoname", b)
	if err != nil || n <= 0 {
		return ""
	}
	return string(trimNulBytes(b[:n]))
}

// Check refuses what restore could not rebuild: a peer outside the tree
// (a dgram one is kept by name with --ext-unix-sk), a connection waiting
// in a backlog that is not the tree's or that already carries data, a
// name relative to a directory.
func (*unixKind) Check(c *Checker, s *fdState) error {
	sk := c.unixSock(s.st.Ino)
	if sk == nil {
		r := c.refuse(s, support.UnixSockets, fmt.Sprintf("unix socket (inode %d)", s.st.Ino))
		r.Detail = "sock_diag does not list it: it belongs to another network namespace"
		r.Advice = "run gockpt in the tree's network namespace (nsenter --target PID --net)"
		return r
	}
	return c.checkUnix(s, sk)
}

func (c *Checker) checkUnix(s *fdState, sk *proc.UnixSock) error {
	refuse := func(kind support.Kind, object, detail, advice, criu string) error {
		r := c.refuse(s, kind, object)
		r.Detail, r.Advice, r.CRIU = detail, advice, criu
		return r
	}
	desc := unixSockName(sk)
	if sk.Name != "" && sk.Name[0] != '/' && sk.Name[0] != '@' {
		return refuse(support.UnixOddState, desc, "bound to a path relative to the directory it was bound in", "bind it to an absolute path", "")
	}
	stream := sk.Type != unix.SOCK_DGRAM
	switch {
	case sk.State == unixListen:
		for _, ic := range sk.Icons {
			if ic == 0 {
				return refuse(support.UnixPending, desc+" listening", "a client that already closed left a connection in its backlog", "", "")
			}
			if _, in := c.socketFd(ic); !in {
				return refuse(support.UnixPending, desc+" listening", fmt.Sprintf("a connection from socket %s, outside the dumped tree, waits in its backlog", c.unixOutside(ic)),
					"let the listener accept the connection, or dump the client's tree too, before dumping", "")
			}
		}
	case sk.Peer != 0:
		peer := c.unixSock(sk.Peer)
		ref, in := c.socketFd(sk.Peer)
		if !in {
			object := desc + " peer " + c.unixOutside(sk.Peer) + " outside the dumped tree"
			if stream {
				return refuse(support.UnixExternal, object, "",
					"dump the tree that holds the peer too, or close the connection before dumping (one end of a connection cannot be restored without the other)", "-")
			}
			if peer == nil || peer.Name == "" {
				return refuse(support.UnixExternal, object, "the peer has no name to connect to again", "", "-")
			}
			if !c.ExtUnixSk {
				return refuse(support.UnixExternal, object, "",
					"dump with --ext-unix-sk to connect it to "+peer.Name+" again at restore (it must exist then), or dump the tree that holds the peer too", "")
			}
		} else if peer != nil && peer.Peer != sk.Ino && peer.Name == "" {
			return refuse(support.UnixOddState, desc+fmt.Sprintf(" peer fd %d of task %d", ref.fd, ref.pid),
				"its peer has no name and is connected to another socket: restore could not connect it again", "", "")
		}
	case stream && sk.State == unixEstablished:
		l := c.unixListenerOf(sk.Ino)
		switch {
		case l == nil && sk.Shutdown == rcvShutdown|sendShutdown:
			// Its peer closed: restore makes it closed the same way.
		case l == nil:
			return refuse(support.UnixOddState, desc, "connected to a socket that is gone", "", "")
		case sk.WQueue != 0:
			return refuse(support.UnixPending, desc, fmt.Sprintf("it sent %d bytes on its connection to %s (inode %d), which is not accepted yet: gockpt cannot read them back", sk.WQueue, l.Name, l.Ino), "", "")
		default:
			if _, in := c.socketFd(l.Ino); !in {
				return refuse(support.UnixPending, desc, fmt.Sprintf("its connection waits in the backlog of %s, outside the dumped tree", c.unixOutside(l.Ino)),
					"let the listener accept the connection, or dump the listener's tree too, before dumping", "")
			}
		}
	}
	return nil
}

// unixSockName names a unix socket as ss does: type and address.
func unixSockName(sk *proc.UnixSock) string {
	d := "unix " + sockTypeName(int(sk.Type))
	if sk.Name != "" {
		return d + " " + sk.Name
	}
	return d + " (unbound)"
}

// unixListenerOf is the listener in whose backlog client ino waits, or nil.
func (c *Checker) unixListenerOf(ino uint64) *proc.UnixSock {
	c.unixMu.Lock()
	defer c.unixMu.Unlock()
	for _, sk := range c.unixSks {
		if sk.State == unixListen {
			for _, ic := range sk.Icons {
				if ic == ino {
					return sk
				}
			}
		}
	}
	return nil
}

// unixOutside names a socket outside the tree: its name, inode and, when
// some process holds it, that process.
func (c *Checker) unixOutside(ino uint64) string {
	d := ""
	if sk := c.unixSock(ino); sk != nil && sk.Name != "" {
		d = sk.Name + " "
	}
	d += fmt.Sprintf("inode %d", ino)
	if pid, fd, ok := socketHolder(ino); ok {
		d += fmt.Sprintf(" (fd %d of task %d (%s))", fd, pid, c.Comm(pid))
	}
	return d
}

// socketHolder finds a process holding socket inode ino, looking through
// every process's fds (only a refusal asks).
func socketHolder(ino uint64) (pid, fd int, ok bool) {
	want := fmt.Sprintf("socket:[%d]", ino)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		fds, _ := ListFds(p)
		slices.Sort(fds)
		for _, f := range fds {
			if t, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", p, f)); err == nil && t == want {
				return p, f, true
			}
		}
	}
	return 0, 0, false
}

// unixSock is what sock_diag tells of socket ino, listing the sockets
// again when ino is new to the list.
func (c *Checker) unixSock(ino uint64) *proc.UnixSock {
	c.unixMu.Lock()
	defer c.unixMu.Unlock()
	if sk := c.unixSks[ino]; sk != nil {
		return sk
	}
	if c.unixSks != nil && c.unixRelisted {
		return nil // listed again already since the tree last changed
	}
	sks, err := proc.UnixSockets()
	if err != nil {
		return nil
	}
	c.unixRelisted = c.unixSks != nil
	c.unixSks = sks
	return sks[ino]
}

// Dump describes the socket and peeks at its queue.
func (k *unixKind) Dump(d *Dumper, o object) error {
	c := d.Checker
	sk := c.unixSock(o.st.Ino)
	if sk == nil {
		return fmt.Errorf("task %d fd %d: unix socket inode %d: sock_diag no longer lists it", o.pid, o.fd, o.st.Ino)
	}
	dup, err := c.dup(o.pid, o.fd)
	if err != nil {
		return err
	}
	defer unix.Close(dup)
	opts, err := unixOpts(dup)
	if err != nil {
		return fmt.Errorf("task %d fd %d: unix socket inode %d: %w", o.pid, o.fd, sk.Ino, err)
	}
	e := &pb.UnixSkEntry{
		Id: proto.Uint32(o.id), Ino: proto.Uint32(uint32(sk.Ino)), Type: proto.Uint32(uint32(sk.Type)),
		State: proto.Uint32(uint32(sk.State)), Flags: proto.Uint32(o.flags()), Uflags: proto.Uint32(0),
		Backlog: proto.Uint32(0), Peer: proto.Uint32(uint32(sk.Peer)), Fown: o.own, Opts: opts,
		Name: append([]byte{}, sk.RawName...),
	}
	if sk.State == unixListen {
		e.Backlog = proto.Uint32(sk.WQueue)
	}
	if sk.Peer == 0 && sk.State == unixEstablished && sk.Type != unix.SOCK_DGRAM {
		if l := c.unixListenerOf(sk.Ino); l != nil {
			// Waiting in l's backlog: restore connects it to l again
			// (CRIU writes it the same way).
			e.Peer = proto.Uint32(uint32(l.Ino))
		}
	}
	if sh := sk.Shutdown & (rcvShutdown | sendShutdown); sh != 0 {
		e.Shutdown = pb.SkShutdown(sh).Enum()
	}
	if len(sk.RawName) > 0 && sk.RawName[0] != 0 {
		var st unix.Stat_t
		path := string(trimNulBytes(sk.RawName))
		if err := unix.Stat(path, &st); err == nil && sk.HasVFS && st.Ino == sk.VFSIno && st.Dev == sk.VFSDev {
			e.FilePerms = &pb.FilePermsEntry{Mode: proto.Uint32(st.Mode), Uid: proto.Uint32(st.Uid), Gid: proto.Uint32(st.Gid)}
		} else {
			e.Deleted = proto.Bool(true)
		}
	}
	fe := &pb.FileEntry{Type: pb.FdTypes_UNIXSK.Enum(), Id: proto.Uint32(o.id), Usk: e}
	peerIno := uint64(e.GetPeer())
	switch _, in := c.socketFd(peerIno); {
	case peerIno != 0 && !in:
		// A dgram peer outside the tree (Check let it pass with
		// --ext-unix-sk): an entry with no fd names it, as CRIU's
		// does, before the socket.
		if !k.externs[peerIno] {
			k.externs[peerIno] = true
			peer := c.unixSock(peerIno)
			if peer == nil {
				return fmt.Errorf("task %d fd %d: unix socket inode %d: its peer %d is gone", o.pid, o.fd, sk.Ino, peerIno)
			}
			k.add(d, externEntry(d.newID(), peer))
		}
		k.add(d, fe)
	case peerIno != 0 && !k.dumped[peerIno] && !k.mutual(c, sk.Ino, peerIno):
		// CRIU resolves a peer that is not connected back only from
		// an entry written earlier: wait for it.
		k.pending[peerIno] = append(k.pending[peerIno], fe)
	default:
		k.add(d, fe)
	}
	if sk.State == unixListen || sk.Type == unix.SOCK_STREAM && sk.RQueue == 0 {
		return nil
	}
	pkts, err := peekQueue(dup, o.id, sk)
	if err != nil {
		var q *queueError
		if errors.As(err, &q) {
			r := c.refuse(&fdState{pid: o.pid, fd: o.fd}, support.UnixQueueExtras, unixSockName(sk))
			r.Detail, r.Advice = q.detail, q.advice
			return r
		}
		return fmt.Errorf("task %d fd %d: unix socket inode %d: read its queue: %w", o.pid, o.fd, sk.Ino, err)
	}
	k.packets = append(k.packets, pkts...)
	return nil
}

// add writes fe to files.img, then the entries that waited for it.
func (k *unixKind) add(d *Dumper, fe *pb.FileEntry) {
	d.Files = append(d.Files, fe)
	ino := uint64(fe.GetUsk().GetIno())
	k.dumped[ino] = true
	waiting := k.pending[ino]
	delete(k.pending, ino)
	for _, w := range waiting {
		k.add(d, w)
	}
}

// mutual tells two sockets connected to each other.
func (k *unixKind) mutual(c *Checker, a, b uint64) bool {
	p := c.unixSock(b)
	return p != nil && p.Peer == a
}

// externEntry is the entry of a socket outside the tree that a socket of
// the tree is connected to (CRIU's USK_EXTERN).
func externEntry(id uint32, peer *proc.UnixSock) *pb.FileEntry {
	none := &pb.FownEntry{Uid: proto.Uint32(0), Euid: proto.Uint32(0), Signum: proto.Uint32(0), PidType: proto.Uint32(0), Pid: proto.Uint32(0)}
	return &pb.FileEntry{Type: pb.FdTypes_UNIXSK.Enum(), Id: proto.Uint32(id), Usk: &pb.UnixSkEntry{
		Id: proto.Uint32(id), Ino: proto.Uint32(uint32(peer.Ino)), Type: proto.Uint32(unix.SOCK_DGRAM),
		State: proto.Uint32(unixListen), Flags: proto.Uint32(0), Uflags: proto.Uint32(uskExtern),
		Backlog: proto.Uint32(0), Peer: proto.Uint32(0), Fown: none, Opts: &pb.SkOptsEntry{
			SoSndbuf: proto.Uint32(0), SoRcvbuf: proto.Uint32(0), SoSndTmoSec: proto.Uint64(0),
			SoSndTmoUsec: proto.Uint64(0), SoRcvTmoSec: proto.Uint64(0), SoRcvTmoUsec: proto.Uint64(0)},
		Name: append([]byte{}, peer.RawName...),
	}}
}

// queueError is a queue dump cannot keep.
type queueError struct{ detail, advice string }

func (e *queueError) Error() string { return e.detail }

// peekQueue copies the packets queued to socket fd without taking them:
// MSG_PEEK from peek offset 0 (the socket's own offset is put back after),
// each datagram with its sender. Fds in flight (SCM_RIGHTS) and
// credentials (SO_PASSCRED) are refused.
func peekQueue(fd int, id uint32, sk *proc.UnixSock) (pkts []unixPacket, err error) {
	orig, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
	}
	if sk.Type == unix.SOCK_STREAM && orig < 0 && sk.RQueue > 0 && sk.RQueue <= 64<<20 {
		// A stream's MSG_PEEK reads on across its queued buffers: one
		// peek as long as the queue takes it all, and the socket's
		// state (its peek offset) is never touched.
		buf := make([]byte, int(sk.RQueue)+1)
		oob := make([]byte, 1024)
		n, oobn, _, _, err := recvmsgName(fd, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != nil {
			return nil, err
		}
		if oobn > 0 {
			return nil, controlRefusal(oob[:oobn])
		}
		if n == int(sk.RQueue) {
			e := &pb.SkPacketEntry{IdFor: proto.Uint32(id), Length: proto.Uint32(uint32(n))}
			return []unixPacket{{entry: e, data: buf[:n]}}, nil
		}
		// Stopped short (a new writer's credentials): the long way.
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
		return nil, fmt.Errorf("set SO_PEEK_OFF: %w", err)
	}
	defer func() {
		if e := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, orig); e != nil && err == nil {
			err = fmt.Errorf("put SO_PEEK_OFF %d back: %w", orig, e)
		}
	}()
	buf := make([]byte, 256<<10)
	oob := make([]byte, 1024)
	var total int
	for {
		n, oobn, flags, from, err := recvmsgName(fd, buf, oob, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && (sk.Type == unix.SOCK_STREAM || sk.Shutdown&rcvShutdown != 0) {
			// The end of what the peer sent (a stream, or a
			// socket shut for reading).
			break
		}
		if flags&unix.MSG_TRUNC != 0 {
			return nil, fmt.Errorf("a queued datagram is larger than %d bytes", len(buf))
		}
		if oobn > 0 {
			return nil, controlRefusal(oob[:oobn])
		}
		e := &pb.SkPacketEntry{IdFor: proto.Uint32(id), Length: proto.Uint32(uint32(n))}
		if sk.Type == unix.SOCK_DGRAM {
			e.Addr = append([]byte{}, from...)
		}
		pkts = append(pkts, unixPacket{entry: e, data: append([]byte(nil), buf[:n]...)})
		total += n
		if total > 1<<30 {
			return nil, errors.New("more than 1 GiB queued")
		}
	}
	return pkts, nil
}

// controlRefusal says why a queued message with control data is refused;
// fds the peek passed to gockpt are closed.
func controlRefusal(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("queued control message: %w", err)
	}
	what := ""
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			for _, f := range fds {
				unix.Close(f)
			}
			what = fmt.Sprintf("%d fd(s) in flight (SCM_RIGHTS)", len(fds))
		} else if m.Header.Type == unix.SCM_CREDENTIALS {
			what = "the sender's credentials (SO_PASSCRED on the receiver)"
		} else if what == "" {
			what = fmt.Sprintf("control data of type %d", m.Header.Type)
		}
	}
	advice := "let the task read its queue before dumping"
	if strings.Contains(what, "SO_PASSCRED") {
		advice = "let the task read its queue, or turn SO_PASSCRED off, before dumping"
	}
	return &queueError{detail: "a message queued to it carries " + what, advice: advice}
}

// unixOpts reads the socket options restore sets again.
func unixOpts(fd int) (*pb.SkOptsEntry, error) {
	get := func(opt int) (int, error) { return unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt) }
	o := &pb.SkOptsEntry{}
	for _, v := range []struct {
		opt int
		set func(int)
	}{
		{unix.SO_SNDBUF, func(v int) { o.SoSndbuf = proto.Uint32(uint32(v)) }},
		{unix.SO_RCVBUF, func(v int) { o.SoRcvbuf = proto.Uint32(uint32(v)) }},
		{unix.SO_PRIORITY, func(v int) { o.SoPriority = proto.Uint32(uint32(v)) }},
		{unix.SO_RCVLOWAT, func(v int) { o.SoRcvlowat = proto.Uint32(uint32(v)) }},
		{unix.SO_MARK, func(v int) { o.SoMark = proto.Uint32(uint32(v)) }},
		{unix.SO_PASSCRED, func(v int) { o.SoPasscred = proto.Bool(v != 0) }},
		{unix.SO_PASSSEC, func(v int) { o.SoPasssec = proto.Bool(v != 0) }},
		{unix.SO_PEEK_OFF, func(v int) { o.SoPeekOff = proto.Int32(int32(v)) }},
	} {
		x, err := get(v.opt)
		if err != nil && (v.opt == unix.SO_PEEK_OFF || v.opt == unix.SO_PASSCRED || v.opt == unix.SO_PASSSEC) && errors.Is(err, unix.EOPNOTSUPP) {
			continue // not of this family (netlink, inet)
		}
		if err != nil {
			return nil, fmt.Errorf("getsockopt %d: %w", v.opt, err)
		}
		v.set(x)
	}
	snd, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO)
	if err != nil {
		return nil, fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	rcv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO)
	if err != nil {
		return nil, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	o.SoSndTmoSec, o.SoSndTmoUsec = proto.Uint64(uint64(snd.Sec)), proto.Uint64(uint64(snd.Usec))
	o.SoRcvTmoSec, o.SoRcvTmoUsec = proto.Uint64(uint64(rcv.Sec)), proto.Uint64(uint64(rcv.Usec))
	// Which buffer sizes the program fixed (SO_SNDBUF, SO_RCVBUF lock
	// them): restore sets both sizes, which locks both, and puts this
	// back, so that sizes the kernel tuned stay tunable (Linux 5.14+).
	if v, err := get(unix.SO_BUF_LOCK); err == nil {
		o.SoBufLock = proto.Uint32(uint32(v))
	}
	if v, err := get(unix.SO_PASSPIDFD); err == nil && v != 0 {
		return nil, &queueError{detail: "SO_PASSPIDFD is on", advice: "turn SO_PASSPIDFD off before dumping"}
	}
	return o, nil
}

// WriteImages writes sk-queues.img.
func (k *unixKind) WriteImages(dir *images.Dir) error {
	for peer, w := range k.pending {
		return fmt.Errorf("%s: its peer (inode %d) was never dumped", describeUnixEntry(w[0].GetUsk()), peer)
	}
	if len(k.packets) == 0 {
		return nil
	}
	w, err := dir.Create(images.SkQueuesFile, images.KindSkQueues)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, p := range k.packets {
		if err := w.WriteEntry(p.entry); err != nil {
			return err
		}
		if _, err := w.Write(p.data); err != nil {
			return err
		}
	}
	return w.Close()
}

// LoadImages reads sk-queues.img, keeping the packets by the socket
// they are queued to, in order.
func (k *unixKind) LoadImages(dir *images.Dir) error {
	if !dir.Exists(images.SkQueuesFile) {
		return nil
	}
	r, err := dir.Open(images.SkQueuesFile)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var e pb.SkPacketEntry
		data, err := r.ReadEntry(&e)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(e.GetScm()) > 0 {
			return fmt.Errorf("%s: a packet for socket id %d carries fds in flight (SCM_RIGHTS), which gockpt does not restore", images.SkQueuesFile, e.GetIdFor())
		}
		k.loaded[e.GetIdFor()] = append(k.loaded[e.GetIdFor()], unixPacket{entry: &e, data: data})
	}
}

// Open hands out the socket of entry fe, building all of the tree's unix
// sockets the first time.
func (k *unixKind) Open(o *Opener, fe *pb.FileEntry) (*os.File, error) {
	if !k.built {
		k.built = true
		k.err = k.build(o)
	}
	if k.err != nil {
		return nil, k.err
	}
	id := fe.GetId()
	f := k.socks[id]
	if f == nil || k.handed[id] {
		return nil, fmt.Errorf("unix socket %s: no socket was made for it", describeUnixEntry(fe.GetUsk()))
	}
	k.handed[id] = true
	return f, nil
}

// Close closes what no task took (the tasks hold the others: Opener
// closes gockpt's copies).
func (k *unixKind) Close() {
	for id, f := range k.socks {
		if !k.handed[id] {
			f.Close()
		}
	}
	for _, fd := range k.tempFds {
		unix.Close(fd)
	}
	k.tempFds = nil
}

func (*unixKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetUsk().GetFown(), e.GetUsk().GetFlags()
}

func (*unixKind) Describe(e *pb.FileEntry) string { return describeUnixEntry(e.GetUsk()) }

// describeUnixEntry names a socket of the images as ss would.
func describeUnixEntry(u *pb.UnixSkEntry) string {
	d := "unix " + sockTypeName(int(u.GetType()))
	if n := unixName(u.GetName()); n != "" {
		d += " " + n
	} else {
		d += " (unbound)"
	}
	if u.GetState() == unixListen {
		d += " listening"
	}
	return d + fmt.Sprintf(" (inode %d)", u.GetIno())
}

// unixName prints a socket address as ss does: a path, or @name.
func unixName(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == 0 {
		return "@" + string(raw[1:])
	}
	return string(trimNulBytes(raw))
}

// build makes every unix socket of the images.
func (k *unixKind) build(o *Opener) error {
	b := &unixBuild{k: k, o: o, byIno: map[uint32]*pb.UnixSkEntry{}, fds: map[uint32]int{}}
	err := b.run()
	for id, fd := range b.fds {
		if err != nil {
			unix.Close(fd)
			continue
		}
		k.socks[id] = os.NewFile(uintptr(fd), "unix-socket")
	}
	return err
}

type unixBuild struct {
	k       *unixKind
	o       *Opener
	entries []*pb.UnixSkEntry // of the tree, by file id order
	byIno   map[uint32]*pb.UnixSkEntry
	fds     map[uint32]int // by file id
	paired  map[uint32]uint32
	// accepted are the accepted sockets, to their client's id; filled
	// and connected, the sockets whose queue or connection is made.
	accepted          map[uint32]uint32
	filled, connected map[uint32]bool
	// orphans are the other ends of sockets whose peer had closed: they
	// send the queue, then close.
	orphans map[uint32]int
	live    map[uint64]bool // socket file inodes bound by running sockets
}

func (b *unixBuild) run() error {
	ids := make([]uint32, 0, len(b.o.Files))
	for id, fe := range b.o.Files {
		if fe.GetType() == pb.FdTypes_UNIXSK {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		u := b.o.Files[id].GetUsk()
		if u == nil {
			return fmt.Errorf("file id %d: a UNIXSK entry without its socket", id)
		}
		b.byIno[u.GetIno()] = u
		if u.GetUflags()&uskExtern == 0 {
			b.entries = append(b.entries, u)
		}
	}
	b.paired, b.orphans = map[uint32]uint32{}, map[uint32]int{}
	b.accepted, b.filled, b.connected = map[uint32]uint32{}, map[uint32]bool{}, map[uint32]bool{}
	defer func() {
		for _, fd := range b.orphans {
			unix.Close(fd)
		}
	}()
	// 1. Make the sockets. Unnamed pairs connected to each other come
	// from socketpair; a connection with a name (an accepted one) is made
	// through a listener later, so that the accepted socket has its
	// listener's name: its client is made now.
	for _, u := range b.entries {
		if _, done := b.fds[u.GetId()]; done {
			continue
		}
		if u.GetType() != unix.SOCK_DGRAM && u.GetState() == unixEstablished && u.GetPeer() == 0 {
			// Its peer closed: a socketpair whose other end sends
			// the queue and closes.
			pair, err := unix.Socketpair(unix.AF_UNIX, int(u.GetType())|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("%s: socketpair: %w", describeUnixEntry(u), err)
			}
			b.fds[u.GetId()], b.orphans[u.GetId()] = pair[0], pair[1]
			continue
		}
		if p := b.peerOf(u); p != nil && p.GetUflags()&uskExtern == 0 && p.GetPeer() == u.GetIno() && p.GetType() == u.GetType() {
			if acc, cl := b.acceptedSide(u, p); acc != nil {
				fd, err := unix.Socket(unix.AF_UNIX, int(cl.GetType())|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return fmt.Errorf("%s: socket: %w", describeUnixEntry(cl), err)
				}
				b.fds[cl.GetId()] = fd
				b.accepted[acc.GetId()] = cl.GetId()
				b.paired[u.GetId()], b.paired[p.GetId()] = p.GetId(), u.GetId()
				b.fds[acc.GetId()] = -1 // made by accept
				continue
			}
			pair, err := unix.Socketpair(unix.AF_UNIX, int(u.GetType())|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("%s: socketpair: %w", describeUnixEntry(u), err)
			}
			b.fds[u.GetId()], b.fds[p.GetId()] = pair[0], pair[1]
			b.paired[u.GetId()], b.paired[p.GetId()] = p.GetId(), u.GetId()
			continue
		}
		fd, err := unix.Socket(unix.AF_UNIX, int(u.GetType())|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: socket: %w", describeUnixEntry(u), err)
		}
		b.fds[u.GetId()] = fd
	}
	// 2. Names: stale socket files go, then the sockets whose name has a
	// file bind and listeners listen.
	for _, u := range b.entries {
		if err := b.clearStale(u); err != nil {
			return err
		}
	}
	for _, u := range b.entries {
		if _, acc := b.accepted[u.GetId()]; len(u.GetName()) == 0 || acc || u.GetDeleted() {
			continue
		}
		if err := b.bind(u); err != nil {
			return err
		}
		if err := b.listen(u); err != nil {
			return err
		}
	}
	// 3. Sockets bound to a deleted path: bound and listening while the
	// path names them, for what must reach them by name (their queue,
	// connections to them), then the path goes.
	for _, u := range b.entries {
		if _, acc := b.accepted[u.GetId()]; len(u.GetName()) == 0 || acc || !u.GetDeleted() {
			continue
		}
		if err := b.bindDeleted(u); err != nil {
			return err
		}
	}
	// 4. Accepted connections, through their listener (or one made for
	// the moment).
	for _, u := range b.entries {
		if cl, ok := b.accepted[u.GetId()]; ok && b.fds[u.GetId()] < 0 {
			if err := b.accept(u, b.o.Files[cl].GetUsk(), nil); err != nil {
				return err
			}
		}
	}
	// 5. Queues, before a dgram socket connects (a connected socket takes
	// datagrams from its peer only).
	for _, u := range b.entries {
		if err := b.fill(u); err != nil {
			return err
		}
	}
	// 6. Connections: to a listener (waiting in its backlog), a dgram
	// socket to its peer by name.
	for _, u := range b.entries {
		if err := b.connect(u); err != nil {
			return err
		}
	}
	// 7. Peers that had closed close; shutdowns and options.
	for id, fd := range b.orphans {
		unix.Close(fd)
		delete(b.orphans, id)
	}
	for _, u := range b.entries {
		fd := b.fds[u.GetId()]
		if how, ok := shutdownHow(u.GetShutdown()); ok {
			if err := unix.Shutdown(fd, how); err != nil {
				return fmt.Errorf("%s: shutdown: %w", describeUnixEntry(u), err)
			}
		}
		if err := setUnixOpts(fd, u.GetOpts()); err != nil {
			return fmt.Errorf("%s: %w", describeUnixEntry(u), err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(u.GetFlags()&(unix.O_NONBLOCK|unix.O_ASYNC))); err != nil {
			return fmt.Errorf("%s: F_SETFL %#o: %w", describeUnixEntry(u), u.GetFlags(), err)
		}
	}
	return nil
}

// acceptedSide tells, of two stream or seqpacket sockets connected to
// each other, the one a listener accepted (it has the listener's name)
// and its client; nil when neither has a name (a socketpair).
func (b *unixBuild) acceptedSide(u, p *pb.UnixSkEntry) (acc, cl *pb.UnixSkEntry) {
	if u.GetType() == unix.SOCK_DGRAM {
		return nil, nil
	}
	un, pn := len(u.GetName()) > 0, len(p.GetName()) > 0
	switch {
	case un && !pn:
		return u, p
	case pn && !un:
		return p, u
	case un && pn:
		if b.listenerNamed(p.GetName(), p.GetType()) != nil && b.listenerNamed(u.GetName(), u.GetType()) == nil {
			return p, u
		}
		return u, p
	}
	return nil, nil
}

func (b *unixBuild) isAccepted(u *pb.UnixSkEntry) bool {
	_, ok := b.accepted[u.GetId()]
	return ok
}

// listenerNamed is the tree's listener bound to name, or nil.
func (b *unixBuild) listenerNamed(name []byte, typ uint32) *pb.UnixSkEntry {
	for _, l := range b.entries {
		if l.GetState() == unixListen && l.GetType() == typ && sameName(l.GetName(), name) {
			return l
		}
	}
	return nil
}

func (b *unixBuild) listen(u *pb.UnixSkEntry) error {
	if u.GetState() != unixListen {
		return nil
	}
	backlog := int(u.GetBacklog())
	if err := unix.Listen(b.fds[u.GetId()], backlog); err != nil {
		return fmt.Errorf("%s: listen(%d): %w", describeUnixEntry(u), backlog, err)
	}
	return nil
}

// accept makes the accepted socket acc and its client cl connected, as
// they were: cl connects to acc's name, where the tree's listener (or,
// when it is gone, a listener gockpt binds there for the moment) accepts
// it. via is the listener's fd when the caller has it.
func (b *unixBuild) accept(acc, cl *pb.UnixSkEntry, via *int) error {
	lfd := -1
	if via != nil {
		lfd = *via
	} else if l := b.listenerNamed(acc.GetName(), acc.GetType()); l != nil && !l.GetDeleted() {
		lfd = b.fds[l.GetId()]
	}
	name := acc.GetName()
	if lfd < 0 {
		var err error
		if lfd, err = unix.Socket(unix.AF_UNIX, int(acc.GetType())|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		defer unix.Close(lfd)
		if name[0] != 0 {
			unix.Unlink(unixName(name)) // a stale file only: clearStale checked
			if acc.GetDeleted() {
				defer unix.Unlink(unixName(name))
			}
		}
		if err := unix.Bind(lfd, sockaddrUnix(name)); err != nil {
			return fmt.Errorf("%s: bind a listener for the moment, to accept it: %w", describeUnixEntry(acc), err)
		}
		if err := unix.Listen(lfd, 1); err != nil {
			return err
		}
	}
	if err := unix.Connect(b.fds[cl.GetId()], sockaddrUnix(name)); err != nil {
		return fmt.Errorf("%s: connect to %s: %w", describeUnixEntry(cl), unixName(name), err)
	}
	fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		return fmt.Errorf("%s: accept: %w", describeUnixEntry(acc), err)
	}
	b.fds[acc.GetId()] = fd
	return nil
}

func (b *unixBuild) peerOf(u *pb.UnixSkEntry) *pb.UnixSkEntry {
	if u.GetPeer() == 0 {
		return nil
	}
	return b.byIno[u.GetPeer()]
}

// clearStale removes the socket file a dead socket left at u's path, so
// that u can bind there; a path a running socket is bound to, or that is
// not a socket, fails the restore.
func (b *unixBuild) clearStale(u *pb.UnixSkEntry) error {
	name := u.GetName()
	if len(name) == 0 || name[0] == 0 || u.GetDeleted() {
		return nil
	}
	path := unixName(name)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("%s: %s: %w", describeUnixEntry(u), path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s: %s exists and is not a socket: move it away before restoring", describeUnixEntry(u), path)
	}
	if b.live == nil {
		b.live = map[uint64]bool{}
		sks, err := proc.UnixSockets()
		if err != nil {
			return err
		}
		for _, sk := range sks {
			if sk.HasVFS {
				b.live[sk.VFSIno] = true
			}
		}
	}
	if b.live[st.Ino] {
		return fmt.Errorf("%s: %s is bound by a running socket: stop what listens there before restoring", describeUnixEntry(u), path)
	}
	if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: remove the stale socket file %s: %w", describeUnixEntry(u), path, err)
	}
	return nil
}

// bind gives u its name: an abstract one as it is, a path with the
// file's mode and owner.
func (b *unixBuild) bind(u *pb.UnixSkEntry) error {
	if err := unix.Bind(b.fds[u.GetId()], sockaddrUnix(u.GetName())); err != nil {
		return fmt.Errorf("%s: bind: %w", describeUnixEntry(u), err)
	}
	if p := u.GetFilePerms(); p != nil && u.GetName()[0] != 0 {
		path := unixName(u.GetName())
		if err := os.Chmod(path, os.FileMode(p.GetMode()&0o7777)); err != nil {
			return fmt.Errorf("%s: %w", describeUnixEntry(u), err)
		}
		if err := os.Lchown(path, int(p.GetUid()), int(p.GetGid())); err != nil {
			return fmt.Errorf("%s: %w", describeUnixEntry(u), err)
		}
	}
	return nil
}

// bindMu orders binds that move a path away for a moment.
var bindMu sync.Mutex

// bindDeleted binds u to a path that was deleted: whatever holds the path
// now moves aside for the moment; u binds and listens there, what must
// reach it by name does (its queue, connections accepted from it or
// waiting in its backlog, dgram sockets connected to it), and the path is
// unlinked.
func (b *unixBuild) bindDeleted(u *pb.UnixSkEntry) error {
	bindMu.Lock()
	defer bindMu.Unlock()
	path := unixName(u.GetName())
	aside := ""
	if _, err := os.Lstat(path); err == nil {
		aside = filepath.Join(filepath.Dir(path), fmt.Sprintf(".gockpt-aside-%d-%d", os.Getpid(), u.GetIno()))
		if err := os.Rename(path, aside); err != nil {
			return fmt.Errorf("%s: move %s aside to bind the deleted name: %w", describeUnixEntry(u), path, err)
		}
	}
	err := b.whileNamed(u)
	if e := unix.Unlink(path); e != nil && err == nil && !errors.Is(e, unix.ENOENT) {
		err = fmt.Errorf("%s: unlink: %w", describeUnixEntry(u), e)
	}
	if aside != "" {
		if e := os.Rename(aside, path); e != nil && err == nil {
			err = fmt.Errorf("put %s back: %w", path, e)
		}
	}
	return err
}

func (b *unixBuild) whileNamed(u *pb.UnixSkEntry) error {
	if err := b.bind(u); err != nil {
		return err
	}
	if err := b.listen(u); err != nil {
		return err
	}
	lfd := b.fds[u.GetId()]
	for _, x := range b.entries {
		switch {
		case u.GetState() == unixListen && b.isAccepted(x) && x.GetType() == u.GetType() && sameName(x.GetName(), u.GetName()) && b.fds[x.GetId()] < 0:
			if err := b.accept(x, b.o.Files[b.accepted[x.GetId()]].GetUsk(), &lfd); err != nil {
				return err
			}
		case x.GetPeer() == u.GetIno() && u.GetPeer() != x.GetIno():
			if err := b.connect(x); err != nil {
				return err
			}
		}
	}
	if u.GetType() == unix.SOCK_DGRAM {
		return b.fill(u)
	}
	return nil
}

// fill puts back the packets queued to u, sent from the socket that
// sent them (its peer, or one bound to the sender's name).
func (b *unixBuild) fill(u *pb.UnixSkEntry) error {
	pkts := b.k.loaded[u.GetId()]
	if len(pkts) == 0 || b.filled[u.GetId()] {
		return nil
	}
	b.filled[u.GetId()] = true
	for _, p := range pkts {
		from, to, err := b.sender(u, p.entry.GetAddr())
		if err != nil {
			return fmt.Errorf("%s: a queued packet of %d bytes: %w", describeUnixEntry(u), len(p.data), err)
		}
		if err := grow(from); err != nil {
			return err
		}
		if to != nil {
			err = unix.Sendto(from, p.data, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, to)
		} else {
			var n int
			n, err = unix.SendmsgN(from, p.data, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			if err == nil && n != len(p.data) {
				err = fmt.Errorf("sent %d of %d bytes", n, len(p.data))
			}
		}
		if err != nil {
			return fmt.Errorf("%s: put back a queued packet of %d bytes: %w", describeUnixEntry(u), len(p.data), err)
		}
	}
	return nil
}

// grow lets a socket that refills a queue hold all of it (its options are
// set to the saved values afterwards).
func grow(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 64<<20); err != nil {
		return fmt.Errorf("SO_SNDBUFFORCE: %w", err)
	}
	return nil
}

// sender is the socket that sends u a packet that came from addr (nil:
// an unbound sender), and the address to send it to (nil: the sender is
// connected to u).
func (b *unixBuild) sender(u *pb.UnixSkEntry, addr []byte) (int, unix.Sockaddr, error) {
	if peer, ok := b.paired[u.GetId()]; ok {
		pu := b.o.Files[peer].GetUsk()
		if u.GetType() != unix.SOCK_DGRAM || sameName(pu.GetName(), addr) {
			return b.fds[peer], nil, nil
		}
	}
	if fd, ok := b.orphans[u.GetId()]; ok {
		return fd, nil, nil
	}
	if u.GetType() != unix.SOCK_DGRAM {
		return -1, nil, errors.New("its peer is not in the images")
	}
	if len(u.GetName()) == 0 {
		return -1, nil, errors.New("it has no name to send it to and its sender is not its peer")
	}
	to := sockaddrUnix(u.GetName())
	if len(addr) == 0 {
		fd, err := b.temp("")
		return fd, to, err
	}
	for _, s := range b.entries {
		if s.GetType() == unix.SOCK_DGRAM && sameName(s.GetName(), addr) {
			return b.fds[s.GetId()], to, nil
		}
	}
	fd, err := b.temp(string(addr))
	return fd, to, err
}

// temp is a dgram socket of gockpt's, bound to name if set, to send
// packets from a sender that is gone.
func (b *unixBuild) temp(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	b.k.tempFds = append(b.k.tempFds, fd)
	if name == "" {
		return fd, nil
	}
	raw := []byte(name)
	if err := unix.Bind(fd, sockaddrUnix(raw)); err != nil {
		return -1, fmt.Errorf("bind a stand-in for the sender %s: %w", unixName(raw), err)
	}
	if raw[0] != 0 {
		// Only the name matters; the path was not there before.
		unix.Unlink(unixName(raw))
	}
	return fd, nil
}

// connect connects u where it was: a client waiting in a listener's
// backlog to the listener, a dgram socket to its peer by name.
func (b *unixBuild) connect(u *pb.UnixSkEntry) error {
	if _, ok := b.paired[u.GetId()]; ok || u.GetPeer() == 0 || b.connected[u.GetId()] {
		return nil
	}
	b.connected[u.GetId()] = true
	p := b.peerOf(u)
	if p == nil {
		return fmt.Errorf("%s: its peer (inode %d) is not in the images", describeUnixEntry(u), u.GetPeer())
	}
	if p.GetUflags()&uskExtern != 0 && !b.o.ExtUnixSk {
		return fmt.Errorf("%s: its peer %s is outside the tree: restore with --ext-unix-sk to connect it by name", describeUnixEntry(u), unixName(p.GetName()))
	}
	if len(p.GetName()) == 0 {
		return fmt.Errorf("%s: its peer (inode %d) has no name to connect to", describeUnixEntry(u), p.GetIno())
	}
	if err := unix.Connect(b.fds[u.GetId()], sockaddrUnix(p.GetName())); err != nil {
		return fmt.Errorf("%s: connect to %s: %w", describeUnixEntry(u), unixName(p.GetName()), err)
	}
	return nil
}

func shutdownHow(s pb.SkShutdown) (int, bool) {
	switch s {
	case pb.SkShutdown_READ:
		return unix.SHUT_RD, true
	case pb.SkShutdown_WRITE:
		return unix.SHUT_WR, true
	case pb.SkShutdown_BOTH:
		return unix.SHUT_RDWR, true
	}
	return 0, false
}

// setUnixOpts sets the options dump read (buffer sizes as the kernel
// reported them: it doubles what it is given).
func setUnixOpts(fd int, o *pb.SkOptsEntry) error {
	if o == nil {
		return nil
	}
	set := func(name string, opt, v int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, v); err != nil {
			// A socket that does not take the option (MPTCP takes
			// fewer) but has the value asked loses nothing.
			if cur, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); errors.Is(err, unix.EOPNOTSUPP) && gerr == nil && cur == v {
				return nil
			}
			return fmt.Errorf("%s %d: %w", name, v, err)
		}
		return nil
	}
	// A size the socket has already is not set: setting one locks it
	// (SO_BUF_LOCK), which not every socket lets go again.
	for _, b := range []struct {
		name     string
		get, set int
		size     uint32
	}{{"SO_SNDBUFFORCE", unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, o.GetSoSndbuf()}, {"SO_RCVBUFFORCE", unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, o.GetSoRcvbuf()}} {
		if cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, b.get); err == nil && uint32(cur) == b.size {
			continue
		}
		if err := set(b.name, b.set, int(b.size/2)); err != nil {
			return err
		}
	}
	if o.SoBufLock != nil {
		if err := set("SO_BUF_LOCK", unix.SO_BUF_LOCK, int(o.GetSoBufLock())); err != nil {
			return err
		}
	}
	if o.SoPriority != nil {
		if err := set("SO_PRIORITY", unix.SO_PRIORITY, int(o.GetSoPriority())); err != nil {
			return err
		}
	}
	if o.SoRcvlowat != nil {
		if err := set("SO_RCVLOWAT", unix.SO_RCVLOWAT, int(o.GetSoRcvlowat())); err != nil {
			return err
		}
	}
	if o.GetSoMark() != 0 {
		if err := set("SO_MARK", unix.SO_MARK, int(o.GetSoMark())); err != nil {
			return err
		}
	}
	if o.GetSoPasscred() {
		if err := set("SO_PASSCRED", unix.SO_PASSCRED, 1); err != nil {
			return err
		}
	}
	if o.GetSoPasssec() {
		if err := set("SO_PASSSEC", unix.SO_PASSSEC, 1); err != nil {
			return err
		}
	}
	if o.SoPeekOff != nil && o.GetSoPeekOff() >= 0 {
		if err := set("SO_PEEK_OFF", unix.SO_PEEK_OFF, int(o.GetSoPeekOff())); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		name     string
		opt      int
		sec, usc uint64
	}{{"SO_SNDTIMEO", unix.SO_SNDTIMEO, o.GetSoSndTmoSec(), o.GetSoSndTmoUsec()}, {"SO_RCVTIMEO", unix.SO_RCVTIMEO, o.GetSoRcvTmoSec(), o.GetSoRcvTmoUsec()}} {
		if t.sec == 0 && t.usc == 0 {
			continue
		}
		tv := unix.Timeval{Sec: int64(t.sec), Usec: int64(t.usc)}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, t.opt, &tv); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return nil
}

// sockaddrUnix is a unix address of exactly these sun_path bytes (a
// path's trailing NUL may be there or not).
func sockaddrUnix(name []byte) *unix.SockaddrUnix {
	if len(name) > 0 && name[0] == 0 {
		return &unix.SockaddrUnix{Name: string(name)}
	}
	return &unix.SockaddrUnix{Name: string(trimNulBytes(name))}
}

// sameName tells two unix addresses apart as the kernel does: an
// abstract name by all its bytes, a path up to its NUL.
func sameName(a, b []byte) bool {
	if len(a) > 0 && a[0] == 0 || len(b) > 0 && b[0] == 0 {
		return string(a) == string(b)
	}
	return string(trimNulBytes(a)) == string(trimNulBytes(b))
}

func trimNulBytes(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func (*unixKind) External(e *pb.FileEntry) string {
	return fmt.Sprintf("socket:[%d]", e.GetUsk().GetIno())
}
