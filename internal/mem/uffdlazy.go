package mem

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Missing-page handling on a Uffd (post-copy restore): the areas are
// registered for missing faults, and whoever reads the fd answers each
// fault by copying the page in (or a zero page).

// Userfaultfd events (linux/userfaultfd.h).
const (
	UffdEventPagefault = 0x12
	UffdEventFork      = 0x13
	UffdEventRemap     = 0x14
	UffdEventRemove    = 0x15
	UffdEventUnmap     = 0x16
)

// UffdMsgSize is the size of struct uffd_msg.
const UffdMsgSize = 32

// UffdMsg is one event read from a userfaultfd.
type UffdMsg struct {
	Event uint8
	// Pagefault: Addr (and Flags); Fork: Fd, the child's new userfaultfd;
	// Remap: From, To, Len; Remove and Unmap: Start, End.
	Flags, Addr   uint64
	Tid           int // the faulting thread, with UffdFeatureThreadID
	Fd            int
	From, To, Len uint64
	Start, End    uint64
}

// ParseUffdMsg decodes a struct uffd_msg.
func ParseUffdMsg(b []byte) UffdMsg {
	m := UffdMsg{Event: b[0]}
	a := b[8:]
	switch m.Event {
	case UffdEventPagefault:
		m.Flags, m.Addr = hostEndian.Uint64(a), hostEndian.Uint64(a[8:])
		m.Tid = int(hostEndian.Uint32(a[16:]))
	case UffdEventFork:
		m.Fd = int(hostEndian.Uint32(a))
	case UffdEventRemap:
		m.From, m.To, m.Len = hostEndian.Uint64(a), hostEndian.Uint64(a[8:]), hostEndian.Uint64(a[16:])
	case UffdEventRemove, UffdEventUnmap:
		m.Start, m.End = hostEndian.Uint64(a), hostEndian.Uint64(a[8:])
	}
	return m
}

// RegisterMissing registers [start, start+length) for missing-page faults.
func (u *Uffd) RegisterMissing(start, length uint64) error {
	if _, err := uffdRegisterMissing(u.fd, start, length); err != nil {
		return fmt.Errorf("userfaultfd fd %d: UFFDIO_REGISTER mode MISSING %#x-%#x: %w", u.fd, start, start+length, err)
	}
	return nil
}

// Unregister ends handling of [start, start+length).
func (u *Uffd) Unregister(start, length uint64) error {
	if err := uffdRange(u.fd, uffdioUnregister, start, length); err != nil {
		return fmt.Errorf("userfaultfd fd %d: UFFDIO_UNREGISTER %#x-%#x: %w", u.fd, start, start+length, err)
	}
	return nil
}

// Wake wakes threads waiting on faults in [start, start+length).
func (u *Uffd) Wake(start, length uint64) error {
	return uffdRange(u.fd, uffdioWake, start, length)
}

// ErrUffdExist: some page of the range is already there.
var ErrUffdExist = errors.New("page already present")

// Copy puts data (whole pages) at dst. It returns how many bytes went in;
// a page already present stops it with ErrUffdExist (wrapped), an mm
// changing under it (mremap in progress) with unix.EAGAIN, a task gone
// with unix.ESRCH.
func (u *Uffd) Copy(dst uint64, data []byte) (int, error) {
	n, err := uffdCopy(u.fd, dst, data)
	if n < 0 {
		n = 0
	}
	if errors.Is(err, unix.EEXIST) {
		return int(n), fmt.Errorf("UFFDIO_COPY %#x: %w", dst+uint64(n), ErrUffdExist)
	}
	if err != nil {
		return int(n), fmt.Errorf("UFFDIO_COPY %#x (%d bytes): %w", dst, len(data), err)
	}
	return len(data), nil
}

// Zero maps zero pages at [start, start+length).
func (u *Uffd) Zero(start, length uint64) error {
	n, err := uffdZeropage(u.fd, start, length)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("UFFDIO_ZEROPAGE %#x: %w", start+uint64(max(n, 0)), ErrUffdExist)
	}
	if err != nil {
		return fmt.Errorf("UFFDIO_ZEROPAGE %#x-%#x: %w", start, start+length, err)
	}
	return nil
}
