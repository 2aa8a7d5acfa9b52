package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// setsockoptBytes sets a socket option from b, as the kernel's struct
// lays it out.
func setsockoptBytes(fd, level, opt int, b []byte) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(p), uintptr(len(b)), 0)
	if e != 0 {
		return e
	}
	return nil
}
