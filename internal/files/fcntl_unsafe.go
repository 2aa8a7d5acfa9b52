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
