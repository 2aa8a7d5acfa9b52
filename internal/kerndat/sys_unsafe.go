package kerndat

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw kernel calls that pass pointers to structs or to memory we mapped.
// The userfaultfd and PAGEMAP_SCAN ones live in internal/mem.

// addrOf is the address of a mapping's first byte.
func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }

// prctlMMMapSize asks the kernel for sizeof(struct prctl_mm_map).
func prctlMMMapSize() (uint32, error) {
	var size uint32
	_, _, e := unix.Syscall6(unix.SYS_PRCTL, unix.PR_SET_MM, unix.PR_SET_MM_MAP_SIZE, uintptr(unsafe.Pointer(&size)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return size, nil
}

// getSyscallInfo runs PTRACE_GET_SYSCALL_INFO; call it on the tracer thread.
func getSyscallInfo(tid int, buf []byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GET_SYSCALL_INFO, uintptr(tid), uintptr(len(buf)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
