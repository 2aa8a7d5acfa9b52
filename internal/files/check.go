package files

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// Checker refuses the fds restore could not bring back exactly: kinds
// gockpt does not dump, locks and leases, deleted files over the ghost
// limit, SIGIO sent outside the tree. Dump runs it over the whole tree
// before touching it, and again on each fd while the tree is frozen (the
// tree may have changed in between). Refusals name the object the way ss,
// lsof and /proc do.
type Checker struct {
	GhostLimit int64
	// FileLocks keeps flock, POSIX and OFD locks (--file-locks) instead
	// of refusing them; leases are refused all the same.
	FileLocks bool
	// InTree tells the tasks of the tree being dumped; nil: only the task
	// itself.
	InTree func(pid int) bool
	// Tasks lists the tree's tasks, for naming the other end of a unix
	// socket ("peer fd 7 of task 1234").
	Tasks []int

	// ExtUnixSk keeps a dgram unix socket whose peer is outside the tree,
	// to connect it to the peer's name at restore (--ext-unix-sk).
	ExtUnixSk bool
	// ShellJob keeps a shell job's terminal (--shell-job).
	ShellJob bool
	// TCPEstablished keeps established TCP connections through repair
	// mode (--tcp-established); TCPClose keeps them without their
	// stream, for restore to make them closed (--tcp-close).
	TCPEstablished, TCPClose bool
	// SkipInFlight leaves out the connections a listener has not
	// accepted yet (--skip-in-flight) instead of refusing them.
	SkipInFlight bool
	// readConns are the connections ReadStreams read, by inode: checked
	// already, on the frozen tree.
	readConns map[uint64]bool

	commMu sync.Mutex // Comm is asked from several goroutines
	comms  map[int]string
	pidfds map[int]int
	// unixSks are the unix sockets sock_diag listed, listed again once
	// when a socket is not among them, and after the tree changes.
	unixMu       sync.Mutex
	unixSks      map[uint64]*proc.UnixSock
	unixRelisted bool
	sockMu       sync.Mutex
	sockFds      map[uint64]fdRef
	// shellTTY is the first shell-job terminal seen; ptyMasters, the
	// indexes of the pairs whose master the tree holds.
	ttyMu      sync.Mutex
	shellTTY   uint64
	ptyMasters map[uint32]bool
}

type fdRef struct{ pid, fd int }

// NewChecker returns a checker for a tree of tasks; ghostLimit 0 is the
// default limit.
func NewChecker(ghostLimit int64, tasks []int) *Checker {
	if ghostLimit == 0 {
		ghostLimit = DefaultGhostLimit
	}
	c := &Checker{GhostLimit: ghostLimit}
	c.SetTasks(tasks)
	return c
}

// SetTasks tells the checker the tree's tasks, once more when the frozen
// tree turns out different from the running one it looked at.
func (c *Checker) SetTasks(tasks []int) {
	in := map[int]bool{}
	for _, p := range tasks {
		in[p] = true
	}
	c.Tasks, c.InTree = tasks, func(pid int) bool { return in[pid] }
	c.sockMu.Lock()
	c.sockFds = nil
	c.sockMu.Unlock()
	c.unixMu.Lock()
	c.unixSks, c.unixRelisted = nil, false
	c.unixMu.Unlock()
	c.ttyMu.Lock()
	c.ptyMasters = nil
	c.ttyMu.Unlock()
}

// Close releases the pidfds the checker opened.
func (c *Checker) Close() {
	for _, fd := range c.pidfds {
		unix.Close(fd)
	}
	c.pidfds = nil
}

// Comm is the task's name, as refusals print it.
func (c *Checker) Comm(pid int) string {
	c.commMu.Lock()
	defer c.commMu.Unlock()
	if s, ok := c.comms[pid]; ok {
		return s
	}
	if c.comms == nil {
		c.comms = map[int]string{}
	}
	s := "?"
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		s = strings.TrimSuffix(string(b), "\n")
	}
	c.comms[pid] = s
	return s
}

// GhostLimitError refuses a deleted file too big to save. Size counts
// the data the file holds, not the holes of a sparse file.
type GhostLimitError struct {
	Where       string // "task 5 (prog) fd 3", "task 5 (prog) VMA 0x7f00-0x7f10"
	Name        string
	Mapped      bool // a mapping's, not an fd's
	Size, Limit int64
}

func (e *GhostLimitError) Error() string {
	if e.Mapped {
		return fmt.Sprintf("%s: %s (deleted) is %d bytes, over the ghost limit of %d bytes: raise it with --ghost-limit %d or unmap the file before dumping",
			e.Where, e.Name, e.Size, e.Limit, e.Size)
	}
	return fmt.Sprintf("%s: deleted file %s is %d bytes, over the ghost limit of %d bytes: raise it with --ghost-limit %d or close the file before dumping",
		e.Where, e.Name, e.Size, e.Limit, e.Size)
}

// where names fd of task pid as refusals do.
func (c *Checker) where(pid, fd int) string {
	return fmt.Sprintf("task %d (%s) fd %d", pid, c.Comm(pid), fd)
}

// IsRefusal tells a refusal (the tree holds something dump will not keep)
// from other errors.
func IsRefusal(err error) bool {
	var r *support.Refusal
	var g *GhostLimitError
	return errors.As(err, &r) || errors.As(err, &g)
}

// fdState is what /proc tells of one fd.
type fdState struct {
	pid, fd int
	link    string // /proc/PID/fd/N
	target  string // what the link says
	st      unix.Stat_t
	info    *proc.Fdinfo
	// proto caches sockProto: each socket kind's Match asks for it.
	proto *string
}

// sockProto is the socket's protocol name (sockProto), read once.
func (s *fdState) sockProto() string {
	if s.proto == nil {
		p := sockProto(s.link)
		s.proto = &p
	}
	return *s.proto
}

// Task checks every fd of task pid; a nil error means dump keeps them
// exactly. An fd closed while it is looked at has nothing to keep.
//
// Every refusal is reported, one per kind of object (the first fd of
// each), not the first alone: a user learns at once all the options a
// tree needs. Other errors end the look.
func (c *Checker) Task(pid int) error {
	fds, err := ListFds(pid)
	if err != nil {
		return err
	}
	var refusals []error
	err = eachFdState(pid, fds, func(fd int, s *fdState, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if _, _, err = c.check(s); err != nil {
			if !IsRefusal(err) {
				return err
			}
			refusals = append(refusals, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return JoinRefusals(refusals...)
}

// JoinRefusals joins refusals into one error, one per kind of object (the
// first of each), those about terminals last: the terminal is how the
// tree was started, and CRIU names it last too. nil for none.
func JoinRefusals(errs ...error) error {
	var flat []error
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			flat = append(flat, j.Unwrap()...)
		} else {
			flat = append(flat, err)
		}
	}
	var first, last []error
	seen := map[support.Kind]bool{}
	for _, err := range flat {
		if err == nil {
			continue
		}
		var r *support.Refusal
		if !errors.As(err, &r) {
			first = append(first, err)
			continue
		}
		if seen[r.Kind] {
			continue
		}
		seen[r.Kind] = true
		if r.Kind == support.Terminals || r.Kind == support.ShellJobs {
			last = append(last, err)
		} else {
			first = append(first, err)
		}
	}
	all := append(first, last...)
	switch len(all) {
	case 0:
		return nil
	case 1:
		return all[0]
	}
	return errors.Join(all...)
}

func (c *Checker) refuse(s *fdState, kind support.Kind, object string) *support.Refusal {
	return &support.Refusal{Pid: s.pid, Comm: c.Comm(s.pid), Where: fmt.Sprintf("fd %d", s.fd), Object: object, Kind: kind}
}

// check finds the fd's kind and refuses what cannot be kept; it returns
// the kind (of the stateless set) and the file's SIGIO owner.
func (c *Checker) check(s *fdState) (Kind, *pb.FownEntry, error) {
	k := stateless.match(s)
	if k == nil {
		return nil, nil, c.refuseKind(s, unsupportedKind(s.target, &s.st))
	}
	if err := k.Check(c, s); err != nil {
		return nil, nil, err
	}
	for _, l := range s.info.FdLocks() {
		if l.Waiter || c.FileLocks && !l.IsLease() {
			continue
		}
		r := c.refuse(s, support.FileLocks, s.target)
		r.Detail = l.Describe()
		if l.IsLease() {
			r.Kind = support.Leases
			if c.FileLocks {
				r.CRIU, r.Advice = "-", support.Advice(support.Leases)+" (--file-locks keeps locks, not leases)"
			}
		}
		return nil, nil, r
	}
	own, err := c.owner(s)
	if err != nil {
		return nil, nil, err
	}
	return k, own, nil
}

// refuseEpoll refuses an epoll set watching a file that no fd of the task
// holds any more (closed, kept open by another task): restore can only add
// a target through an fd of the task.
func (c *Checker) refuseEpoll(pid, efd int, target string, closed int) *support.Refusal {
	return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: fmt.Sprintf("fd %d", efd), Object: target, Kind: support.EpollClosedTargets,
		Detail: fmt.Sprintf("it watches a file added as fd %d that no fd of the task holds any more", closed)}
}

// refuseKind names a refused fd the way the user knows it.
func (c *Checker) refuseKind(s *fdState, kind support.Kind) error {
	r := c.refuse(s, kind, s.target)
	switch kind {
	case support.UnixSockets, support.TCPSockets, support.UDPSockets, support.OtherSockets:
		desc, k, criu := c.describeSocket(s)
		r.Object, r.Kind, r.CRIU = desc, k, criu
	}
	return r
}

// unsupportedKind names what an fd no kind of kindTable matched is, for
// its refusal.
func unsupportedKind(target string, st *unix.Stat_t) support.Kind {
	switch {
	case strings.HasPrefix(target, "socket:"):
		return support.OtherSockets // refined by describeSocket
	case strings.HasPrefix(target, "anon_inode:"):
		return anonInodeKind(strings.TrimPrefix(target, "anon_inode:"))
	case !strings.HasPrefix(target, "/"):
		return support.SpecialFiles
	case st.Mode&unix.S_IFMT == unix.S_IFCHR && isTTY(st.Rdev):
		return support.Terminals
	}
	return support.SpecialFiles
}

func anonInodeKind(name string) support.Kind {
	switch strings.Trim(name, "[]") {
	case "timerfd":
		return support.Timerfd
	case "signalfd":
		return support.Signalfd
	case "inotify":
		return support.Inotify
	case "fanotify":
		return support.Fanotify
	case "userfaultfd":
		return support.Userfaultfd
	case "io_uring":
		return support.IOUring
	case "bpf-map", "bpf-prog", "bpf_link", "bpf-link", "bpf_iter":
		return support.BPF
	}
	return support.OtherAnonInode
}

// pidfdOf returns a pidfd of task pid, opened once.
func (c *Checker) pidfdOf(pid int) (int, error) {
	if fd, ok := c.pidfds[pid]; ok {
		return fd, nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("task %d: pidfd_open: %w", pid, err)
	}
	if c.pidfds == nil {
		c.pidfds = map[int]int{}
	}
	c.pidfds[pid] = fd
	return fd, nil
}

// dup returns a copy of the task's fd in gockpt (pidfd_getfd): the same
// open file description, so getsockname and fcntl on it read the task's.
func (c *Checker) dup(pid, fd int) (int, error) {
	pfd, err := c.pidfdOf(pid)
	if err != nil {
		return -1, err
	}
	dup, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		return -1, fmt.Errorf("task %d fd %d: pidfd_getfd: %w", pid, fd, err)
	}
	return dup, nil
}

// owner reads who gets SIGIO for the fd's file (F_SETOWN_EX), with which
// signal and set by whom, and refuses an owner outside the tree: after
// restore that process may be gone, or another one with its PID.
func (c *Checker) owner(s *fdState) (*pb.FownEntry, error) {
	f := &pb.FownEntry{Uid: proto.Uint32(0), Euid: proto.Uint32(0), Signum: proto.Uint32(0), PidType: proto.Uint32(0), Pid: proto.Uint32(0)}
	if s.info.Flags&unix.O_PATH != 0 {
		return f, nil // no owner on an O_PATH fd
	}
	dup, err := c.dup(s.pid, s.fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dup)
	o, err := getOwnerEx(dup)
	if err != nil {
		return nil, fmt.Errorf("task %d fd %d: F_GETOWN_EX: %w", s.pid, s.fd, err)
	}
	sig, err := unix.FcntlInt(uintptr(dup), unix.F_GETSIG, 0)
	if err != nil {
		return nil, fmt.Errorf("task %d fd %d: F_GETSIG: %w", s.pid, s.fd, err)
	}
	f.PidType, f.Pid, f.Signum = proto.Uint32(uint32(o.Type)), proto.Uint32(uint32(o.Pid)), proto.Uint32(uint32(sig))
	if o.Pid == 0 {
		return f, nil
	}
	uid, euid, err := getOwnerUids(dup)
	if err != nil {
		return nil, fmt.Errorf("task %d fd %d: F_GETOWNER_UIDS: %w", s.pid, s.fd, err)
	}
	f.Uid, f.Euid = proto.Uint32(uid), proto.Uint32(euid)
	inTree := c.InTree
	if inTree == nil {
		inTree = func(p int) bool { return p == s.pid }
	}
	owner := int(o.Pid)
	if o.Type == fOwnerPgrp || o.Type == fOwnerSid {
		// A group or session is in the tree if one of its members is.
		if c.groupInTree(int(o.Type), owner) {
			return f, nil
		}
	} else if inTree(owner) || o.Type == fOwnerTid && inTree(tgidOf(owner)) {
		return f, nil
	}
	r := c.refuse(s, support.SigioOwner, s.target)
	r.Detail = fmt.Sprintf("SIGIO goes to %s %d, outside the dumped tree", ownerWord(o.Type), owner)
	return nil, r
}

// tgidOf is the process of thread tid, 0 if it is gone.
func tgidOf(tid int) int {
	st, err := proc.ReadStatus(tid)
	if err != nil {
		return 0
	}
	return st.Tgid
}

// F_OWNER_* of linux/fcntl.h.
const (
	fOwnerTid  = 0
	fOwnerPid  = 1
	fOwnerPgrp = 2
	fOwnerSid  = 3 // not settable, but the kernel's enum has it
)

func ownerWord(t int32) string {
	switch t {
	case fOwnerTid:
		return "thread"
	case fOwnerPgrp:
		return "process group"
	}
	return "process"
}

func (c *Checker) groupInTree(typ, id int) bool {
	for _, p := range c.Tasks {
		st, err := proc.ReadStat(p)
		if err != nil {
			continue
		}
		if typ == fOwnerPgrp && st.Pgrp == id || typ == fOwnerSid && st.Session == id {
			return true
		}
	}
	return false
}

// SO_DOMAIN and SO_PROTOCOL tell a socket's family and protocol.
const (
	soDomain   = 39
	soProtocol = 38
)

// describeSocket names a socket as ss shows it: "unix stream @name peer
// fd 7 of task 1234", "TCP 127.0.0.1:41234 -> 127.0.0.1:10000". It also
// returns its kind and the CRIU option that would checkpoint it ("-" for
// none).
func (c *Checker) describeSocket(s *fdState) (string, support.Kind, string) {
	dup, err := c.dup(s.pid, s.fd)
	if err != nil {
		return s.target, support.OtherSockets, ""
	}
	defer unix.Close(dup)
	domain, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, soDomain)
	typ, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_TYPE)
	protocol, _ := unix.GetsockoptInt(dup, unix.SOL_SOCKET, soProtocol)
	switch domain {
	case unix.AF_UNIX:
		d, criu := c.describeUnix(s.st.Ino, typ)
		return d, support.UnixSockets, criu
	case unix.AF_INET, unix.AF_INET6:
		return describeInet(dup, domain, typ, protocol)
	case unix.AF_NETLINK:
		return fmt.Sprintf("netlink socket (%s)", netlinkName(protocol)), support.OtherSockets, ""
	case unix.AF_PACKET:
		return "packet socket", support.OtherSockets, ""
	}
	return fmt.Sprintf("socket of family %d (%s)", domain, s.target), support.OtherSockets, ""
}

func sockTypeName(typ int) string {
	switch typ {
	case unix.SOCK_STREAM:
		return "stream"
	case unix.SOCK_DGRAM:
		return "dgram"
	case unix.SOCK_SEQPACKET:
		return "seqpacket"
	case unix.SOCK_RAW:
		return "raw"
	}
	return "type " + strconv.Itoa(typ)
}

// describeUnix names a unix socket with its address and the other end.
func (c *Checker) describeUnix(ino uint64, typ int) (string, string) {
	d := "unix " + sockTypeName(typ)
	sk := c.unixSock(ino)
	if sk == nil {
		return d, ""
	}
	if sk.Name != "" {
		d += " " + sk.Name
	} else {
		d += " (unbound)"
	}
	if sk.State == tcpListen {
		return d + " listening", ""
	}
	if sk.Peer == 0 {
		return d, ""
	}
	if ref, ok := c.socketFd(sk.Peer); ok {
		return d + fmt.Sprintf(" peer fd %d of task %d", ref.fd, ref.pid), ""
	}
	peer := ""
	if p := c.unixSock(sk.Peer); p != nil && p.Name != "" {
		peer = " " + p.Name
	}
	return d + fmt.Sprintf(" peer%s (inode %d) outside the dumped tree", peer, sk.Peer), "--ext-unix-sk"
}

// socketFd finds the fd of the tree holding socket inode ino.
func (c *Checker) socketFd(ino uint64) (fdRef, bool) {
	c.sockMu.Lock()
	defer c.sockMu.Unlock()
	if c.sockFds == nil {
		c.sockFds = map[uint64]fdRef{}
		for _, pid := range c.Tasks {
			fds, _ := ListFds(pid)
			for _, fd := range fds {
				t, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
				if err != nil {
					continue
				}
				if n, ok := strings.CutPrefix(t, "socket:["); ok {
					if v, err := strconv.ParseUint(strings.TrimSuffix(n, "]"), 10, 64); err == nil {
						if _, seen := c.sockFds[v]; !seen {
							c.sockFds[v] = fdRef{pid, fd}
						}
					}
				}
			}
		}
	}
	r, ok := c.sockFds[ino]
	return r, ok
}

// TCP states of include/net/tcp_states.h.
const (
	tcpEstablished = 1
	tcpListen      = 10
)

var tcpStates = []string{1: "ESTABLISHED", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "CLOSE", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING", "NEW-SYN-RECV"}

// describeInet names an IPv4 or IPv6 socket as ss does.
func describeInet(fd, domain, typ, protocol int) (string, support.Kind, string) {
	local, _ := unix.Getsockname(fd)
	peer, _ := unix.Getpeername(fd)
	addrs := addrString(local)
	if p := addrString(peer); p != "" && p != "*:*" {
		addrs += " -> " + p
	}
	switch {
	case typ == unix.SOCK_STREAM && (protocol == unix.IPPROTO_TCP || protocol == 0 || protocol == ipprotoMPTCP):
		name := "TCP "
		if protocol == ipprotoMPTCP {
			name = "MPTCP "
		}
		state := 0
		if ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			state = int(ti.State)
		}
		switch state {
		case tcpListen:
			return name + addrs + " listening", support.TCPSockets, "-"
		case tcpEstablished:
			return name + addrs, support.TCPSockets, ""
		}
		if state > 0 && state < len(tcpStates) {
			return name + addrs + " " + tcpStates[state], support.TCPSockets, ""
		}
		return name + addrs, support.TCPSockets, ""
	case typ == unix.SOCK_DGRAM && (protocol == unix.IPPROTO_UDP || protocol == 0):
		return "UDP " + addrs, support.UDPSockets, ""
	case typ == unix.SOCK_DGRAM && (protocol == unix.IPPROTO_ICMP || protocol == unix.IPPROTO_ICMPV6):
		return "ICMP " + addrs, support.OtherSockets, ""
	case typ == unix.SOCK_RAW:
		v := "IPv4"
		if domain == unix.AF_INET6 {
			v = "IPv6"
		}
		return fmt.Sprintf("raw %s socket (protocol %d)", v, protocol), support.OtherSockets, ""
	}
	return fmt.Sprintf("%s socket (protocol %d) %s", sockTypeName(typ), protocol, addrs), support.OtherSockets, ""
}

// addrString prints an address as ss does: 127.0.0.1:80, [::1]:80; a
// socket not bound yet is "*:*".
func addrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		if a.Port == 0 && a.Addr == [4]byte{} {
			return "*:*"
		}
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		if a.Port == 0 && a.Addr == [16]byte{} {
			return "*:*"
		}
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)).String()
	}
	return ""
}

var netlinkNames = map[int]string{
	unix.NETLINK_ROUTE: "NETLINK_ROUTE", unix.NETLINK_AUDIT: "NETLINK_AUDIT",
	unix.NETLINK_KOBJECT_UEVENT: "NETLINK_KOBJECT_UEVENT", unix.NETLINK_GENERIC: "NETLINK_GENERIC",
	unix.NETLINK_SOCK_DIAG: "NETLINK_SOCK_DIAG", unix.NETLINK_NETFILTER: "NETLINK_NETFILTER",
	unix.NETLINK_CONNECTOR: "NETLINK_CONNECTOR", unix.NETLINK_XFRM: "NETLINK_XFRM",
}

func netlinkName(p int) string {
	if n, ok := netlinkNames[p]; ok {
		return n
	}
	return "protocol " + strconv.Itoa(p)
}
