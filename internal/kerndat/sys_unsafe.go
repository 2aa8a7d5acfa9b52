package kerndat

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw kernel calls that pass pointers to structs or to memory we mapped.

// userfaultfd ioctls (linux/userfaultfd.h).
const (
	userfaultfdIocNew  = 0xaa00     // _IO(0xAA, 0x00), on /dev/userfaultfd
	uffdioAPI          = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister     = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdioWriteprotect = 0xc018aa06 // _IOWR(0xAA, 0x06, struct uffdio_writeprotect)
	uffdAPI            = 0xaa

	uffdioRegisterModeWP     = 1 << 1
	uffdioWriteprotectModeWP = 1 << 0
)

// uffdioAPIArg is struct uffdio_api.
type uffdioAPIArg struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// uffdioRegisterArg is struct uffdio_register.
type uffdioRegisterArg struct {
	Start, Len uint64
	Mode       uint64
	Ioctls     uint64
}

// uffdioWriteprotectArg is struct uffdio_writeprotect.
type uffdioWriteprotectArg struct {
	Start, Len uint64
	Mode       uint64
}

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
	if e != 0 {
		return 0, e
	}
	return r, nil
}

// uffdAPIHandshake runs UFFDIO_API asking for features and returns what the
// kernel reports: with features 0, every feature it supports.
func uffdAPIHandshake(fd int, features uint64) (uffdioAPIArg, error) {
	a := uffdioAPIArg{API: uffdAPI, Features: features}
	_, err := ioctlPtr(fd, uffdioAPI, unsafe.Pointer(&a))
	return a, err
}

func uffdRegisterWP(fd int, start, length uint64) error {
	a := uffdioRegisterArg{Start: start, Len: length, Mode: uffdioRegisterModeWP}
	_, err := ioctlPtr(fd, uffdioRegister, unsafe.Pointer(&a))
	return err
}

func uffdWriteprotect(fd int, start, length uint64) error {
	a := uffdioWriteprotectArg{Start: start, Len: length, Mode: uffdioWriteprotectModeWP}
	_, err := ioctlPtr(fd, uffdioWriteprotect, unsafe.Pointer(&a))
	return err
}

// PAGEMAP_SCAN (linux/fs.h).
const (
	pagemapScan = 0xc0606610 // _IOWR('f', 16, struct pm_scan_arg)

	pmScanWPMatching   = 1 << 0
	pmScanCheckWPAsync = 1 << 1

	pageIsWritten = 1 << 1
	pageIsPresent = 1 << 3
)

// pmScanArg is struct pm_scan_arg.
type pmScanArg struct {
	Size              uint64
	Flags             uint64
	Start, End        uint64
	WalkEnd           uint64
	Vec, VecLen       uint64
	MaxPages          uint64
	CategoryInverted  uint64
	CategoryMask      uint64
	CategoryAnyofMask uint64
	ReturnMask        uint64
}

// pageRegion is struct page_region.
type pageRegion struct {
	Start, End uint64
	Categories uint64
}

// pagemapScanRegions runs PAGEMAP_SCAN over [start, end) on a pagemap fd,
// reporting pages in category mask, and returns the regions found.
func pagemapScanRegions(fd int, flags, start, end, mask uint64) ([]pageRegion, error) {
	vec := make([]pageRegion, 16)
	a := pmScanArg{
		Size:         uint64(unsafe.Sizeof(pmScanArg{})),
		Flags:        flags,
		Start:        start,
		End:          end,
		Vec:          uint64(uintptr(unsafe.Pointer(&vec[0]))),
		VecLen:       uint64(len(vec)),
		CategoryMask: mask,
		ReturnMask:   mask,
	}
	n, err := ioctlPtr(fd, pagemapScan, unsafe.Pointer(&a))
	if err != nil {
		return nil, err
	}
	return vec[:n], nil
}

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
