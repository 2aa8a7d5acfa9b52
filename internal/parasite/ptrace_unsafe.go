package parasite

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

const (
	reqGetSyscallInfo = 0x420e
	syscallInfoEntry  = 1
	syscallInfoExit   = 2
)

// syscallStop is what PTRACE_GET_SYSCALL_INFO says about a syscall stop.
type syscallStop struct {
	op uint8  // syscallInfoEntry or syscallInfoExit
	ip uint64 // after the syscall instruction
	nr uint64 // entry: the syscall number
}

// getSyscallInfo must run on the tracer thread.
func getSyscallInfo(tid int) (syscallStop, error) {
	var buf [128]byte
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, reqGetSyscallInfo, uintptr(tid), uintptr(len(buf)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
	if e != 0 {
		return syscallStop{}, e
	}
	return syscallStop{op: buf[0], ip: le.Uint64(buf[8:]), nr: le.Uint64(buf[24:])}, nil
}

const unsafeSizeofRegs = unsafe.Sizeof(ptrace.Regs{})

func regsBytes(r *ptrace.Regs) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafeSizeofRegs)...)
}

func regsFromBytes(b []byte) ptrace.Regs {
	var r ptrace.Regs
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafeSizeofRegs), b)
	return r
}
