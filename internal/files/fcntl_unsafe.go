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
