package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvmsgName is recvmsg(2) that returns the sender's address as the
// kernel wrote it (sun_path bytes, msg_namelen long): an abstract name may
// hold NULs that unix.Recvmsg's Sockaddr would cut, and an unbound sender
// gives none.
func recvmsgName(fd int, p, oob []byte, flags int) (n, oobn, recvflags int, name []byte, err error) {
	var rsa unix.RawSockaddrUnix
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Name = (*byte)(unsafe.Pointer(&rsa))
	msg.Namelen = uint32(unsafe.Sizeof(rsa))
	msg.Iov = &iov
	msg.Iovlen = 1
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, 0, 0, nil, e
	}
	if l := int(msg.Namelen) - 2; l > 0 && l <= len(rsa.Path) {
		name = make([]byte, l)
		for i := range name {
			name[i] = byte(rsa.Path[i])
		}
	}
	return int(r), int(msg.Controllen), int(msg.Flags), name, nil
}

// getsockoptBytes is getsockopt(2) into b; it returns the length the
// kernel wrote.
func getsockoptBytes(fd, level, opt int, b []byte) (int, error) {
	l := uint32(len(b))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(l), nil
}

// openPeer is ioctl(TIOCGPTPEER): a new open file of the slave of pty
// master fd, with flags, O_NOCTTY and O_LARGEFILE (as open(2) gives it),
// close-on-exec in gockpt. O_CLOEXEC is not passed: the kernel would
// keep it in the file's flags, which fdinfo shows.
func openPeer(master, flags int) (int, error) {
	const oLargefile = 0o100000
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, uintptr(flags|unix.O_NOCTTY|oLargefile))
	if e != 0 {
		return -1, e
	}
	unix.CloseOnExec(int(r))
	return int(r), nil
}
