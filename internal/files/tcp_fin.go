package files

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/netlock"
	pb "github.com/gockpt/gockpt/proto"
)

// A FIN the peer had sent, or its ack of ours, cannot be made again
// through repair mode: restore forges the packet the peer sent, from the
// peer's address to the socket, with the sequence numbers it would have
// had, and sends it through a raw socket. The packet carries the network
// lock's mark, so the lock lets it in.

const (
	tcpFlagFin = 0x01
	tcpFlagAck = 0x10
)

// forgeFin makes the socket receive the peer's FIN at seq, acking what
// the peer had acked.
func forgeFin(fd int, e *pb.InetSkEntry, seq uint32, win uint16) error {
	return forge(fd, e, seq, win, tcpFlagFin|tcpFlagAck, "the peer's FIN")
}

// forgeAck makes the socket receive the peer's ack of everything it sent,
// its FIN included.
func forgeAck(fd int, e *pb.InetSkEntry, seq uint32, win uint16) error {
	return forge(fd, e, seq, win, tcpFlagAck, "the peer's ack of our FIN")
}

func forge(fd int, e *pb.InetSkEntry, seq uint32, win uint16, flags byte, what string) error {
	before := tcpState(fd)
	if err := repairQueue(fd, tcpSendQueue); err != nil {
		return err
	}
	wseq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return fmt.Errorf("%s: TCP_QUEUE_SEQ: %w", what, err)
	}
	ack := uint32(wseq)
	if flags&tcpFlagFin != 0 {
		// The peer acks what it had: up to snd_una.
		outq, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
		if err != nil {
			return fmt.Errorf("%s: SIOCOUTQ: %w", what, err)
		}
		ack -= uint32(outq)
	}
	c := connOf(e)
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], c.Remote.Port())
	binary.BigEndian.PutUint16(seg[2:], c.Local.Port())
	binary.BigEndian.PutUint32(seg[4:], seq)
	binary.BigEndian.PutUint32(seg[8:], ack)
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], win)
	src, dst := c.Remote.Addr().Unmap(), c.Local.Addr().Unmap()
	var pseudo []byte
	pseudo = append(pseudo, src.AsSlice()...)
	pseudo = append(pseudo, dst.AsSlice()...)
	if src.Is4() {
		pseudo = append(pseudo, 0, unix.IPPROTO_TCP, 0, byte(len(seg)))
	} else {
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(seg)))
		pseudo = append(pseudo, 0, 0, 0, unix.IPPROTO_TCP)
	}
	binary.BigEndian.PutUint16(seg[16:], inetChecksum(append(pseudo, seg...)))

	family := unix.AF_INET
	if !src.Is4() {
		family = unix.AF_INET6
	}
	raw, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("%s: raw socket: %w", what, err)
	}
	defer unix.Close(raw)
	if err := unix.SetsockoptInt(raw, unix.SOL_SOCKET, unix.SO_MARK, netlock.Mark); err != nil {
		return fmt.Errorf("%s: SO_MARK: %w", what, err)
	}
	var pkt []byte
	var to unix.Sockaddr
	if src.Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(seg)))
		binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
		h[8] = 64
		h[9] = unix.IPPROTO_TCP
		copy(h[12:], src.AsSlice())
		copy(h[16:], dst.AsSlice())
		binary.BigEndian.PutUint16(h[10:], inetChecksum(h))
		pkt = append(h, seg...)
		to = &unix.SockaddrInet4{Addr: dst.As4()}
	} else {
		h := make([]byte, 40)
		h[0] = 0x60
		binary.BigEndian.PutUint16(h[4:], uint16(len(seg)))
		h[6] = unix.IPPROTO_TCP
		h[7] = 64
		copy(h[8:], src.AsSlice())
		copy(h[24:], dst.AsSlice())
		pkt = append(h, seg...)
		to = &unix.SockaddrInet6{Addr: dst.As16()}
	}
	if err := unix.Sendto(raw, pkt, 0, to); err != nil {
		return fmt.Errorf("%s: send: %w", what, err)
	}
	// Over loopback the packet is taken at once; give a slow machine a
	// moment all the same.
	for end := time.Now().Add(time.Second); tcpState(fd) == before; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			return fmt.Errorf("%s: the socket did not take it (still %s)", what, tcpStateName(before))
		}
	}
	return nil
}

// inetChecksum is the Internet checksum (RFC 1071) of b.
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
