package pidctl

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	ptraceSetSigmask = 0x420b
)

func setSigmask(tid int, m uint64) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, ptraceSetSigmask, uintptr(tid), 8, uintptr(unsafe.Pointer(&m)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// probeClone3SetTID calls clone3 in gockpt itself with arguments every kernel
// rejects before creating anything: set_tid_size 1 with a NULL set_tid. Linux
// 5.5+ says EINVAL (it knows set_tid); 5.3 and 5.4 say E2BIG (fields past the
// size they know are non-zero); older kernels or a seccomp filter say ENOSYS.
func probeClone3SetTID() unix.Errno {
	var args [cloneArgsSizeVer1 / 8]uint64
	args[argSetTIDSize] = 1
	_, _, e := unix.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args[0])), cloneArgsSizeVer1, 0)
	return e
}
