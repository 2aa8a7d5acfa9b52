package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// kcmpEpollTfd is KCMP_EPOLL_TFD of kcmp(2).
const kcmpEpollTfd = 7

// epollHolds tells whether fd of task pid is the open file that epoll efd
// of the same task watches as its toff-th target added under number tfd
// (kcmp KCMP_EPOLL_TFD with struct kcmp_epoll_slot).
func epollHolds(pid, efd, tfd, toff, fd int) bool {
	slot := [3]uint32{uint32(efd), uint32(tfd), uint32(toff)}
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpEpollTfd, uintptr(fd), uintptr(unsafe.Pointer(&slot)), 0)
	return e == 0 && r == 0
}
