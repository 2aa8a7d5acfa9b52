package mem

import (
	"encoding/binary"
	"runtime"
	"unsafe"
)

// userfaultfd ioctls for missing-page handling (post-copy restore).
const (
	uffdioUnregister = 0x8010aa01 // _IOR(0xAA, 0x01, struct uffdio_range)
	uffdioWake       = 0x8010aa02 // _IOR(0xAA, 0x02, struct uffdio_range)
	uffdioCopy       = 0xc028aa03 // _IOWR(0xAA, 0x03, struct uffdio_copy)
	uffdioZeropage   = 0xc020aa04 // _IOWR(0xAA, 0x04, struct uffdio_zeropage)

	uffdioRegisterModeMissing = 1 << 0
)

type uffdioRangeArg struct{ Start, Len uint64 }

// uffdioCopyArg is struct uffdio_copy.
type uffdioCopyArg struct {
	Dst, Src, Len, Mode uint64
	Copy                int64
}

// uffdioZeropageArg is struct uffdio_zeropage.
type uffdioZeropageArg struct {
	Start, Len, Mode uint64
	Zeropage         int64
}

var _ [40]byte = [unsafe.Sizeof(uffdioCopyArg{})]byte{}
var _ [32]byte = [unsafe.Sizeof(uffdioZeropageArg{})]byte{}

func uffdRegisterMissing(fd int, start, length uint64) (uint64, error) {
	a := uffdioRegisterArg{Start: start, Len: length, Mode: uffdioRegisterModeMissing}
	_, err := ioctlPtr(fd, uffdioRegister, unsafe.Pointer(&a))
	return a.Ioctls, err
}

func uffdRange(fd int, req uintptr, start, length uint64) error {
	a := uffdioRangeArg{Start: start, Len: length}
	_, err := ioctlPtr(fd, req, unsafe.Pointer(&a))
	return err
}

// uffdCopy copies src to dst in the fd's mm; it returns the bytes copied,
// which the kernel reports also when it stops early.
func uffdCopy(fd int, dst uint64, src []byte) (int64, error) {
	a := uffdioCopyArg{Dst: dst, Src: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(src)))), Len: uint64(len(src))}
	_, err := ioctlPtr(fd, uffdioCopy, unsafe.Pointer(&a))
	runtime.KeepAlive(src)
	return a.Copy, err
}

func uffdZeropage(fd int, start, length uint64) (int64, error) {
	a := uffdioZeropageArg{Start: start, Len: length}
	_, err := ioctlPtr(fd, uffdioZeropage, unsafe.Pointer(&a))
	return a.Zeropage, err
}

// hostEndian reads the kernel's uffd_msg fields.
var hostEndian = binary.LittleEndian
