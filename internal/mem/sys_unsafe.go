package mem

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw kernel calls that pass pointers to structs or to memory we mapped. The
// safe wrappers in uffd.go and pmscan.go add the error context.

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

// pagemapScan is PAGEMAP_SCAN, _IOWR('f', 16, struct pm_scan_arg) (linux/fs.h).
const pagemapScan = 0xc0606610

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

// Region must match struct page_region: the kernel writes it into our vec.
var _ [24]byte = [unsafe.Sizeof(Region{})]byte{}

// pmScanArg must be exactly the kernel's struct: it checks the size field.
var _ [96]byte = [unsafe.Sizeof(pmScanArg{})]byte{}

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) (uintptr, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
	if e != 0 {
		return 0, e
	}
	return r, nil
}

// uffdAPIHandshake runs UFFDIO_API asking for features and returns the
// features the kernel offers (all of them, not only those enabled).
func uffdAPIHandshake(fd int, features uint64) (uint64, error) {
	a := uffdioAPIArg{API: uffdAPI, Features: features}
	_, err := ioctlPtr(fd, uffdioAPI, unsafe.Pointer(&a))
	return a.Features, err
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

// pagemapScanInto runs one PAGEMAP_SCAN on a pagemap fd with vec as the
// output buffer. It returns how many regions the kernel filled in and where
// its walk stopped, which it reports also when the walk fails.
func pagemapScanInto(fd int, start, end uint64, a ScanArgs, vec []Region) (n int, walkEnd uint64, err error) {
	arg := pmScanArg{
		Size:              uint64(unsafe.Sizeof(pmScanArg{})),
		Flags:             a.Flags,
		Start:             start,
		End:               end,
		Vec:               uint64(uintptr(unsafe.Pointer(unsafe.SliceData(vec)))),
		VecLen:            uint64(len(vec)),
		CategoryInverted:  a.CategoryInverted,
		CategoryMask:      a.CategoryMask,
		CategoryAnyofMask: a.CategoryAnyofMask,
		ReturnMask:        a.ReturnMask,
	}
	r, err := ioctlPtr(fd, pagemapScan, unsafe.Pointer(&arg))
	// vec's address travels as an integer the GC does not see.
	runtime.KeepAlive(vec)
	return int(r), arg.WalkEnd, err
}

// addrOf is the address of a mapping's first byte.
func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
