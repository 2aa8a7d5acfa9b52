package mem

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mapPages maps n private anonymous pages, unmapped when the test ends.
func mapPages(t *testing.T, n int) ([]byte, uint64) {
	t.Helper()
	m, err := unix.Mmap(-1, 0, n*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatalf("mmap %d pages: %v", n, err)
	}
	t.Cleanup(func() { unix.Munmap(m) })
	return m, addrOf(m)
}

func openSelf(t *testing.T) *Pagemap {
	t.Helper()
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pm.Close() })
	return pm
}

// newTracker creates a userfaultfd as the parasite will in a dumped task,
// enables WP_ASYNC, and registers and write-protects [start, start+length).
func newTracker(t *testing.T, start, length uint64) (*Uffd, uint64) {
	t.Helper()
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|UffdUserModeOnly, 0, 0)
	if e == unix.ENOSYS {
		t.Skip("no userfaultfd(2) in this kernel")
	}
	if e != 0 {
		t.Fatalf("userfaultfd: %v", e)
	}
	u := UffdFromFd(int(fd))
	t.Cleanup(func() { u.Close() })
	features, err := u.HandshakeWPAsync()
	if errors.Is(err, ErrNoWPAsync) && !kernelAtLeast(t, 6, 7) {
		t.Skipf("Linux 6.7+ needed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := u.RegisterWP(start, length); err != nil {
		t.Fatal(err)
	}
	if err := u.WriteProtect(start, length); err != nil {
		t.Fatal(err)
	}
	return u, features
}

func kernelAtLeast(t *testing.T, major, minor int) bool {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &ma, &mi); err != nil {
		t.Fatalf("kernel release %q: %v", uts.Release[:], err)
	}
	return ma > major || ma == major && mi >= minor
}

// pagesOf prints regions as page indexes from base ("1-3 7"), with
// categories when withCats ("1-3:0xb 7:0x9").
func pagesOf(rs []Region, base uint64, withCats bool) string {
	var parts []string
	for _, r := range rs {
		first, last := (r.Start-base)/PageSize, (r.End-base)/PageSize-1
		s := fmt.Sprint(first)
		if last != first {
			s = fmt.Sprintf("%d-%d", first, last)
		}
		if withCats {
			s += fmt.Sprintf(":%#x", r.Categories)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// rangesOf prints Ranges like pagesOf.
func rangesOf(rs []Range, base uint64) string {
	var regions []Region
	for _, r := range rs {
		regions = append(regions, Region{Start: r.Start, End: r.End()})
	}
	return pagesOf(regions, base, false)
}
