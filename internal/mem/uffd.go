package mem

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// UFFD_FEATURE_* bits (linux/userfaultfd.h), in bit order.
const (
	UffdFeaturePagefaultFlagWP  = 1 << 0
	UffdFeatureEventFork        = 1 << 1
	UffdFeatureEventRemap       = 1 << 2
	UffdFeatureEventRemove      = 1 << 3
	UffdFeatureMissingHugetlbfs = 1 << 4
	UffdFeatureMissingShmem     = 1 << 5
	UffdFeatureEventUnmap       = 1 << 6
	UffdFeatureSigbus           = 1 << 7
	UffdFeatureThreadID         = 1 << 8
	UffdFeatureMinorHugetlbfs   = 1 << 9
	UffdFeatureMinorShmem       = 1 << 10
	UffdFeatureExactAddress     = 1 << 11
	UffdFeatureWPHugetlbfsShmem = 1 << 12
	UffdFeatureWPUnpopulated    = 1 << 13
	UffdFeaturePoison           = 1 << 14
	UffdFeatureWPAsync          = 1 << 15
	UffdFeatureMove             = 1 << 16
)

// UffdUserModeOnly is the userfaultfd(2) flag UFFD_USER_MODE_ONLY: the fd
// handles only faults from user mode, which unprivileged tasks may ask for
// even when vm.unprivileged_userfaultfd is 0. Dirty tracking needs no more.
const UffdUserModeOnly = 1

// ErrNoWPAsync says the kernel cannot track written pages with userfaultfd.
var ErrNoWPAsync = errors.New("the kernel offers no UFFD_FEATURE_WP_ASYNC (Linux 6.7+ with CONFIG_PTE_MARKER_UFFD_WP needed)")

// Uffd is a userfaultfd. Once write-protected in async mode, the kernel
// resolves write faults itself and only clears the page's uffd-wp bit, which
// PAGEMAP_SCAN reports as PageIsWritten: nobody has to read the fd.
//
// The fd belongs to the mm that created it, so a tracker for another task
// is created inside that task (by the parasite) and passed over to us.
type Uffd struct {
	fd int
}

// UffdFromFd wraps fd and takes ownership of it.
func UffdFromFd(fd int) *Uffd { return &Uffd{fd: fd} }

// NewUffd creates a userfaultfd for our own mm: the syscall first, then
// /dev/userfaultfd (Linux 6.1+), which works for whoever may open the device
// even where vm.unprivileged_userfaultfd forbids the syscall. flags are the
// userfaultfd(2) flags (O_CLOEXEC, O_NONBLOCK, UffdUserModeOnly); via says
// which way worked.
func NewUffd(flags int) (u *Uffd, via string, err error) {
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags), 0, 0)
	if e == 0 {
		return UffdFromFd(int(fd)), "userfaultfd(2)", nil
	}
	sysErr := fmt.Errorf("userfaultfd(2): %w", e)
	dev, err := os.OpenFile("/dev/userfaultfd", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("%w; %w", sysErr, err)
	}
	defer dev.Close()
	// USERFAULTFD_IOC_NEW takes the flags as its argument.
	fd, _, e = unix.Syscall(unix.SYS_IOCTL, dev.Fd(), userfaultfdIocNew, uintptr(flags))
	if e != 0 {
		return nil, "", fmt.Errorf("%w; /dev/userfaultfd USERFAULTFD_IOC_NEW: %w", sysErr, e)
	}
	return UffdFromFd(int(fd)), "/dev/userfaultfd", nil
}

// Fd is the descriptor, -1 once closed.
func (u *Uffd) Fd() int { return u.fd }

// Close closes the fd once; later calls report os.ErrClosed. Not safe to
// call concurrently with other methods.
func (u *Uffd) Close() error {
	if u.fd < 0 {
		return fmt.Errorf("userfaultfd: %w", os.ErrClosed)
	}
	fd := u.fd
	u.fd = -1
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close userfaultfd fd %d: %w", fd, err)
	}
	return nil
}

// Handshake runs UFFDIO_API enabling features and returns every feature the
// kernel offers (not only those enabled). The kernel takes one successful
// UFFDIO_API per fd and answers EINVAL to the next, so a query with
// features 0 leaves the fd useless for tracking.
func (u *Uffd) Handshake(features uint64) (offered uint64, err error) {
	offered, err = uffdAPIHandshake(u.fd, features)
	if err != nil {
		return 0, fmt.Errorf("userfaultfd fd %d: UFFDIO_API features %#x: %w", u.fd, features, err)
	}
	return offered, nil
}

// OfferedUffdFeatures asks the kernel which UFFD_FEATURE_* bits it supports,
// on a throwaway userfaultfd of our own: UFFDIO_API works once per fd, so
// the fd that will be used cannot be queried first.
func OfferedUffdFeatures() (uint64, error) {
	u, _, err := NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK | UffdUserModeOnly)
	if err != nil {
		return 0, err
	}
	defer u.Close()
	return u.Handshake(0)
}

// HandshakeWPAsync enables async write-protect tracking: WP_ASYNC alone.
// Not WP_UNPOPULATED: it would put a marker (and page tables) on every
// never-touched page of a protected area, costly for large sparse
// reservations, and a page populated later counts as written anyway. It
// returns the features enabled on u, and an error wrapping ErrNoWPAsync on
// kernels without it.
func (u *Uffd) HandshakeWPAsync() (features uint64, err error) {
	offered, err := OfferedUffdFeatures()
	if err != nil {
		return 0, fmt.Errorf("query userfaultfd features: %w", err)
	}
	if offered&UffdFeatureWPAsync == 0 {
		return 0, fmt.Errorf("userfaultfd fd %d: %w", u.fd, ErrNoWPAsync)
	}
	features = UffdFeatureWPAsync
	if _, err := u.Handshake(features); err != nil {
		return 0, err
	}
	return features, nil
}

// RegisterWP registers [start, start+length) for write-protect tracking
// (UFFDIO_REGISTER mode WP); the range may span several VMAs but no hole.
func (u *Uffd) RegisterWP(start, length uint64) error {
	if err := uffdRegisterWP(u.fd, start, length); err != nil {
		return fmt.Errorf("userfaultfd fd %d: UFFDIO_REGISTER mode WP %#x-%#x: %w", u.fd, start, start+length, err)
	}
	return nil
}

// WriteProtect write-protects [start, start+length) (UFFDIO_WRITEPROTECT
// mode WP), so that every page counts as not written from now on.
func (u *Uffd) WriteProtect(start, length uint64) error {
	if err := uffdWriteprotect(u.fd, start, length); err != nil {
		return fmt.Errorf("userfaultfd fd %d: UFFDIO_WRITEPROTECT %#x-%#x: %w", u.fd, start, start+length, err)
	}
	return nil
}
