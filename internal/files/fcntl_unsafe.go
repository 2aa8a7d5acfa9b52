package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fOwnerEx is struct f_owner_ex.
type fOwnerEx struct {
	Type int32
	Pid  int32
}

func getOwnerEx(fd int) (fOwnerEx, error) {
	var o fOwnerEx
	_, _, e := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), unix.F_GETOWN_EX, uintptr(unsafe.Pointer(&o)))
	if e != 0 {
		return o, e
	}
	return o, nil
}

// fGetOwnerUids is F_GETOWNER_UIDS: the real and effective uid of whoever
// set the file's SIGIO owner, which the kernel checks before it signals.
const fGetOwnerUids = 17

func getOwnerUids(fd int) (uid, euid uint32, err error) {
	var u [2]uint32
	_, _, e := unix.Syscall(unix.SYS_FCNTL, uintptr(fd), fGetOwnerUids, uintptr(unsafe.Pointer(&u)))
	if e != 0 {
		return 0, 0, e
	}
	return u[0], u[1], nil
}

// kcmpEpollTfd is KCMP_EPOLL_TFD: is fd of task pid the file that the epoll
// efd of the same task watches as its toff-th target registered as tfd?
const kcmpEpollTfd = 7

// kcmpEpollSlot is struct kcmp_epoll_slot.
type kcmpEpollSlot struct {
	Efd, Tfd, Toff uint32
}

// epollWatches tells whether epoll efd of task pid watches, as target
// (tfd, toff), the file open at fd of the same task.
func epollWatches(pid, efd, tfd, toff, fd int) (bool, error) {
	slot := kcmpEpollSlot{uint32(efd), uint32(tfd), uint32(toff)}
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpEpollTfd, uintptr(fd), uintptr(unsafe.Pointer(&slot)), 0)
	if e == unix.EBADF {
		return false, nil // fd closed meanwhile
	}
	if e != 0 {
		return false, e
	}
	return r == 0, nil
}
