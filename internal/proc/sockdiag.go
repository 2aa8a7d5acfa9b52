package proc

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Netlink constants of linux/sock_diag.h and linux/unix_diag.h.
const (
	sockDiagByFamily = 20
	udiagShowName    = 0x01
	udiagShowVFS     = 0x02
	udiagShowPeer    = 0x04
	udiagShowIcons   = 0x08
	udiagShowRqlen   = 0x10
	unixDiagName     = 0
	unixDiagVFS      = 1
	unixDiagPeer     = 2
	unixDiagIcons    = 3
	unixDiagRqlen    = 4
	unixDiagShutdown = 6
)

// SockDiag sends one SOCK_DIAG_BY_FAMILY request (req is the family's
// request struct) and calls each with every answer's payload until the
// kernel is done.
func SockDiag(req []byte, flags uint16, each func(payload []byte)) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return fmt.Errorf("socket(AF_NETLINK, NETLINK_SOCK_DIAG): %w", err)
	}
	defer unix.Close(fd)
	ne := binary.NativeEndian
	msg := make([]byte, unix.SizeofNlMsghdr+len(req))
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], sockDiagByFamily)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|flags)
	ne.PutUint32(msg[8:], 1)
	copy(msg[unix.SizeofNlMsghdr:], req)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send sock_diag request: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("receive sock_diag answer: %w", err)
		}
		done, err := walkNetlink(buf[:n], each)
		if err != nil || done {
			return err
		}
		if flags&unix.NLM_F_DUMP == 0 {
			return nil
		}
	}
}

// walkNetlink calls each for every message of one netlink datagram; done
// is the end of a dump (NLMSG_DONE) or an answer's error message.
func walkNetlink(b []byte, each func(payload []byte)) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return true, fmt.Errorf("malformed netlink message of %d bytes", l)
		}
		payload := b[unix.SizeofNlMsghdr:l]
		switch ne.Uint16(b[4:]) {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(payload) >= 4 {
				if e := int32(ne.Uint32(payload)); e != 0 {
					return true, fmt.Errorf("sock_diag: %w", syscall.Errno(-e))
				}
			}
			return true, nil
		default:
			each(payload)
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return false, nil
}

// UnixSock is what sock_diag tells of a unix socket.
type UnixSock struct {
	Ino  uint64
	Type uint8 // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	// State is the kernel's TCP-like state: 1 established, 7 unconnected
	// (TCP_CLOSE), 10 listening.
	State uint8
	// Name is the bound address: a path, "@name" for an abstract one, ""
	// when unbound.
	Name string
	// RawName is the address as the kernel holds it: an abstract name
	// starts with a NUL and may hold more.
	RawName []byte
	// Peer is the inode of the socket at the other end, 0 if none (also
	// for a connection a listener has not accepted yet: its other end has
	// no inode).
	Peer uint64
	// VFSDev and VFSIno are the socket file a path name made (st_dev as
	// stat(2) gives it); an accepted socket shares its listener's.
	VFSDev, VFSIno uint64
	HasVFS         bool
	// Icons are, for a listener, the inodes of the clients whose
	// connections wait in its backlog (0: a client already closed).
	Icons []uint64
	// RQueue and WQueue: for a listener, the connections waiting and the
	// backlog; otherwise the bytes queued to read and the bytes sent not
	// yet read by the other end.
	RQueue, WQueue uint32
	// Shutdown is the shutdown mask: 1 no more reads, 2 no more writes.
	Shutdown uint8
}

// UnixSockets lists the unix sockets of this network namespace by inode.
func UnixSockets() (map[uint64]*UnixSock, error) {
	ne := binary.NativeEndian
	req := make([]byte, 24) // struct unix_diag_req
	req[0] = unix.AF_UNIX
	ne.PutUint32(req[4:], ^uint32(0)) // every state
	ne.PutUint32(req[12:], udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowIcons|udiagShowRqlen)
	ne.PutUint32(req[16:], ^uint32(0))
	ne.PutUint32(req[20:], ^uint32(0))
	out := map[uint64]*UnixSock{}
	err := SockDiag(req, unix.NLM_F_DUMP, func(p []byte) {
		if s, ok := ParseUnixDiag(p); ok {
			out[s.Ino] = s
		}
	})
	return out, err
}

// ParseUnixDiag decodes one struct unix_diag_msg and its attributes.
func ParseUnixDiag(p []byte) (*UnixSock, bool) {
	ne := binary.NativeEndian
	if len(p) < 16 || p[0] != unix.AF_UNIX {
		return nil, false
	}
	s := &UnixSock{Type: p[1], State: p[2], Ino: uint64(ne.Uint32(p[4:]))}
	for a := p[16:]; len(a) >= 4; {
		l := int(ne.Uint16(a[0:]))
		if l < 4 || l > len(a) {
			break
		}
		v := a[4:l]
		switch ne.Uint16(a[2:]) {
		case unixDiagName:
			s.RawName = append([]byte(nil), v...)
			if len(v) > 0 && v[0] == 0 {
				s.Name = "@" + string(v[1:])
			} else {
				s.Name = string(trimNul(v))
			}
		case unixDiagPeer:
			if len(v) >= 4 {
				s.Peer = uint64(ne.Uint32(v))
			}
		case unixDiagVFS:
			if len(v) >= 8 {
				s.VFSIno = uint64(ne.Uint32(v))
				s.VFSDev = userDev(ne.Uint32(v[4:]))
				s.HasVFS = true
			}
		case unixDiagIcons:
			for i := 0; i+4 <= len(v); i += 4 {
				s.Icons = append(s.Icons, uint64(ne.Uint32(v[i:])))
			}
		case unixDiagRqlen:
			if len(v) >= 8 {
				s.RQueue, s.WQueue = ne.Uint32(v), ne.Uint32(v[4:])
			}
		case unixDiagShutdown:
			if len(v) >= 1 {
				s.Shutdown = v[0]
			}
		}
		l = (l + 3) &^ 3
		if l > len(a) {
			break
		}
		a = a[l:]
	}
	return s, true
}

// userDev turns a kernel-internal dev_t (major<<20 | minor) into the one
// stat(2) gives.
func userDev(k uint32) uint64 {
	return unix.Mkdev(k>>20, k&0xfffff)
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
