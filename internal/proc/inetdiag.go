package proc

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// TCPSock is a TCP socket as inet_diag lists it.
type TCPSock struct {
	Ino           uint64
	State         uint8
	Local, Remote netip.AddrPort
}

// TCPSockets lists the TCP sockets of this network namespace (IPv4 and
// IPv6) in the states of the mask (1<<TCP_ESTABLISHED | ...), by inode:
// one netlink dump instead of a look at each socket.
func TCPSockets(states uint32) (map[uint64]TCPSock, error) {
	out := map[uint64]TCPSock{}
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, 56) // struct inet_diag_req_v2
		req[0] = family
		req[1] = unix.IPPROTO_TCP
		binary.NativeEndian.PutUint32(req[4:], states)
		err := SockDiag(req, unix.NLM_F_DUMP, func(p []byte) {
			if s, ok := ParseInetDiag(p); ok {
				out[s.Ino] = s
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ParseInetDiag decodes one struct inet_diag_msg.
func ParseInetDiag(p []byte) (TCPSock, bool) {
	if len(p) < 72 {
		return TCPSock{}, false
	}
	addr := func(b []byte) netip.Addr {
		if p[0] == unix.AF_INET {
			return netip.AddrFrom4([4]byte(b[:4]))
		}
		return netip.AddrFrom16([16]byte(b[:16]))
	}
	be := binary.BigEndian
	return TCPSock{
		Ino:    uint64(binary.NativeEndian.Uint32(p[68:])),
		State:  p[1],
		Local:  netip.AddrPortFrom(addr(p[8:24]), be.Uint16(p[4:])),
		Remote: netip.AddrPortFrom(addr(p[24:40]), be.Uint16(p[6:])),
	}, true
}
