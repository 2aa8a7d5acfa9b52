package kerndat

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/netlock"
	"github.com/gockpt/gockpt/internal/proc"
)

// rawFd runs f with the socket's fd.
func rawFd(c syscall.Conn, f func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// queueSeq puts a socket in repair mode and reads the sequence number of one
// of its queues.
func queueSeq(c *net.TCPConn, queue int) (uint32, error) {
	var seq int
	err := rawFd(c, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, 1); err != nil {
			return fmt.Errorf("setsockopt TCP_REPAIR: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
			return fmt.Errorf("setsockopt TCP_REPAIR_QUEUE: %w", err)
		}
		var err error
		if seq, err = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ); err != nil {
			return fmt.Errorf("getsockopt TCP_QUEUE_SEQ: %w", err)
		}
		return nil
	})
	return uint32(seq), err
}

const (
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

func probeTCPRepair() Result {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fail(fmt.Errorf("listen on loopback: %w", err))
	}
	defer ln.Close()
	client, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		return fail(fmt.Errorf("connect on loopback: %w", err))
	}
	defer client.Close()
	server, err := ln.AcceptTCP()
	if err != nil {
		return fail(fmt.Errorf("accept on loopback: %w", err))
	}
	defer server.Close()
	if _, err := client.Write([]byte("x")); err != nil {
		return fail(err)
	}
	if _, err := server.Read(make([]byte, 1)); err != nil {
		return fail(err)
	}
	// Both ends in repair mode: what the client sent next is what the
	// server expects next.
	snd, err := queueSeq(client, tcpSendQueue)
	if err != nil {
		r := fail(err)
		switch errnoOf(err) {
		case unix.EPERM:
			r.Detail += " (CAP_NET_ADMIN needed)"
		case unix.ENOPROTOOPT:
			r.Detail += " (Linux 3.5+ needed)"
		}
		return r
	}
	rcv, err := queueSeq(server, tcpRecvQueue)
	if err != nil {
		return fail(err)
	}
	if snd != rcv {
		return failf("TCP_REPAIR on a loopback connection: client send sequence %d, server receive sequence %d", snd, rcv)
	}
	return ok("loopback connection in repair mode; send and receive queue sequences agree (%d)", snd)
}

// probeNftables makes and deletes a scratch table laid out like the
// network lock's, in gockpt's network namespace.
func probeNftables() Result {
	if err := netlock.Probe(); err != nil {
		return fail(err)
	}
	return ok("made and deleted a scratch table inet %sprobe-*: sets with concatenated keys, input and output chains, the lock's rules", netlock.TablePrefix)
}

// sock_diag request flags and TCP states (linux/unix_diag.h, tcp_states.h).
const (
	udiagShowName  = 1
	tcpListenState = 10
)

func inode(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// diagUnix asks for one unix socket by inode (struct unix_diag_req) and
// returns whether the answer (struct unix_diag_msg) names it.
func diagUnix(ino uint64) (bool, error) {
	ne := binary.NativeEndian
	req := make([]byte, 24)
	req[0] = unix.AF_UNIX
	ne.PutUint32(req[4:], ^uint32(0)) // all states
	ne.PutUint32(req[8:], uint32(ino))
	ne.PutUint32(req[12:], udiagShowName)
	ne.PutUint32(req[16:], ^uint32(0)) // no cookie
	ne.PutUint32(req[20:], ^uint32(0))
	found := false
	err := proc.SockDiag(req, 0, func(p []byte) {
		if len(p) >= 8 && p[0] == unix.AF_UNIX && uint64(ne.Uint32(p[4:])) == ino {
			found = true
		}
	})
	return found, err
}

// diagTCPListeners dumps IPv4 TCP listeners (struct inet_diag_req_v2) and
// returns whether one has inode ino (struct inet_diag_msg: idiag_inode at 68).
func diagTCPListeners(ino uint64) (bool, error) {
	ne := binary.NativeEndian
	req := make([]byte, 56)
	req[0] = unix.AF_INET
	req[1] = unix.IPPROTO_TCP
	ne.PutUint32(req[4:], 1<<tcpListenState)
	found := false
	err := proc.SockDiag(req, unix.NLM_F_DUMP, func(p []byte) {
		if len(p) >= 72 && uint64(ne.Uint32(p[68:])) == ino {
			found = true
		}
	})
	return found, err
}

func probeSockDiag() Result {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	uino, err := inode(fds[0])
	if err != nil {
		return fail(err)
	}
	found, err := diagUnix(uino)
	if err != nil {
		r := fail(fmt.Errorf("unix: %w", err))
		if errnoOf(err) == unix.ENOENT {
			r.Detail += " (CONFIG_UNIX_DIAG is not set or unix_diag is not loaded)"
		}
		return r
	}
	if !found {
		return failf("sock_diag did not return our unix socket (inode %d)", uino)
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fail(fmt.Errorf("listen on loopback: %w", err))
	}
	defer ln.Close()
	var tino uint64
	if err := rawFd(ln, func(fd int) error {
		var err error
		tino, err = inode(fd)
		return err
	}); err != nil {
		return fail(err)
	}
	found, err = diagTCPListeners(tino)
	if err != nil {
		r := fail(fmt.Errorf("inet: %w", err))
		if errnoOf(err) == unix.ENOENT {
			r.Detail += " (CONFIG_INET_DIAG/CONFIG_INET_TCP_DIAG is not set or tcp_diag is not loaded)"
		}
		return r
	}
	if !found {
		return failf("sock_diag dump of TCP listeners did not return ours (inode %d)", tino)
	}
	return ok("NETLINK_SOCK_DIAG returned our unix socket (inode %d) and our TCP listener (inode %d)", uino, tino)
}
