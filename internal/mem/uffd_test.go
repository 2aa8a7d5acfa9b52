package mem

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestOfferedUffdFeatures(t *testing.T) {
	offered, err := OfferedUffdFeatures()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("offered %#x", offered)
	t.Logf("offered UFFD_FEATURE_* bits: %#x", offered)
	if offered&UffdFeatureWPAsync == 0 && kernelAtLeast(t, 6, 7) {
		t.Errorf("Linux 6.7+ offers features %#x, without WP_ASYNC", offered)
	}
}

// TestHandshakeWPAsync checks the features enabled, and that the fd takes
// no second handshake, which is why features are queried on another fd.
func TestHandshakeWPAsync(t *testing.T) {
	u, via, err := NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK | UffdUserModeOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	t.Logf("userfaultfd from %s", via)
	features, err := u.HandshakeWPAsync()
	if errors.Is(err, ErrNoWPAsync) && !kernelAtLeast(t, 6, 7) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(UffdFeatureWPAsync); features != want {
		t.Errorf("features %#x, want %#x", features, want)
	}
	_, err = u.Handshake(0)
	if want := fmt.Sprintf("userfaultfd fd %d: UFFDIO_API features 0x0: invalid argument", u.Fd()); err == nil || err.Error() != want {
		t.Errorf("second UFFDIO_API: %v, want %q", err, want)
	}
}

// TestHandshakeUnknownFeature: the kernel rejects a feature it does not
// know. Linux 6.18 then still takes a handshake on the fd; the log says
// when a kernel does not.
func TestHandshakeUnknownFeature(t *testing.T) {
	u, _, err := NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK | UffdUserModeOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Handshake(1 << 63); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("UFFDIO_API with an unknown feature bit: %v, want EINVAL", err)
	}
	if _, err := u.Handshake(0); err != nil {
		t.Logf("after a rejected UFFDIO_API the fd takes no other: %v", err)
	}
}

func TestUffdClose(t *testing.T) {
	u, _, err := NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK | UffdUserModeOnly)
	if err != nil {
		t.Fatal(err)
	}
	fd := u.Fd()
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("fd %d after Close: F_GETFD says %v, want EBADF", fd, err)
	}
	if err := u.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v, want os.ErrClosed", err)
	}
	if u.Fd() != -1 {
		t.Errorf("Fd() after Close is %d", u.Fd())
	}
	err = u.WriteProtect(0x1000, 0x2000)
	if want := "userfaultfd fd -1: UFFDIO_WRITEPROTECT 0x1000-0x3000: bad file descriptor"; err == nil || err.Error() != want {
		t.Errorf("WriteProtect after Close: %v, want %q", err, want)
	}
}

// TestWrittenPages is the pre-dump cycle: protect, let the task write,
// read the written pages and re-arm in one scan, and see only new writes.
func TestWrittenPages(t *testing.T) {
	const n = 16
	m, base := mapPages(t, n)
	for i := range n {
		m[i*PageSize] = 1
	}
	pm := openSelf(t)
	newTracker(t, base, n*PageSize)
	scan := func(a ScanArgs) []Region {
		t.Helper()
		rs, err := pm.ScanRegions(base, base+n*PageSize, a)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	written := ScanArgs{CategoryMask: PageIsWritten, ReturnMask: PageIsWritten}
	if got := pagesOf(scan(written), base, false); got != "" {
		t.Fatalf("written right after protecting: %q", got)
	}

	for _, i := range []int{1, 2, 3, 7, 12} {
		m[i*PageSize] = 2
	}
	if m[9*PageSize] != 1 { // a read is not a write
		t.Fatal("page 9 lost its byte")
	}
	if got, want := pagesOf(scan(written), base, false), "1-3 7 12"; got != want {
		t.Errorf("written pages %q, want %q", got, want)
	}
	cats := ScanArgs{CategoryAnyofMask: PageIsPresent | PageIsSwapped, ReturnMask: PageIsWritten | PageIsPresent | PageIsPFNZero}
	if got, want := pagesOf(scan(cats), base, true), "0:0x8 1-3:0xa 4-6:0x8 7:0xa 8-11:0x8 12:0xa 13-15:0x8"; got != want {
		t.Errorf("categories %q, want %q", got, want)
	}

	rearm := ScanArgs{
		Flags:             ScanWPMatching | ScanCheckWPAsync,
		CategoryAnyofMask: PageIsPresent | PageIsSwapped,
		ReturnMask:        PageIsWritten,
	}
	// The re-arming scan reports categories from before it protects.
	if got, want := pagesOf(scan(rearm), base, true), "0:0x0 1-3:0x2 4-6:0x0 7:0x2 8-11:0x0 12:0x2 13-15:0x0"; got != want {
		t.Errorf("re-arming scan reported %q, want %q", got, want)
	}
	if got := pagesOf(scan(written), base, false); got != "" {
		t.Errorf("written after re-arming: %q, want none", got)
	}
	m[5*PageSize] = 3
	if got, want := pagesOf(scan(written), base, false), "5"; got != want {
		t.Errorf("written after re-arming and writing page 5: %q, want %q", got, want)
	}
}

// TestScanRegionsLoop writes every other page of 64 MiB, 8192 regions, and
// scans with a 7-region buffer, so ScanRegions must resume from walk_end
// over a thousand times, and with one too large for the kernel's bounce
// buffer, where Linux 6.18 reports a stale walk_end.
func TestScanRegionsLoop(t *testing.T) {
	const n = 64 << 20 / PageSize
	m, base := mapPages(t, n)
	for i := range n {
		m[i*PageSize] = 1
	}
	pm := openSelf(t)
	newTracker(t, base, n*PageSize)
	for i := 0; i < n; i += 2 {
		m[i*PageSize] = 2
	}
	scan := func(vecLen int, a ScanArgs) []Region {
		t.Helper()
		pm.vec = make([]Region, vecLen)
		rs, err := pm.ScanRegions(base, base+n*PageSize, a)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	// checkAlternating wants page i in region i, written when i is even.
	checkAlternating := func(what string, rs []Region, pages int, oddCats uint64) {
		t.Helper()
		if len(rs) != pages {
			t.Fatalf("%s: %d regions, want %d", what, len(rs), pages)
		}
		step := uint64(2)
		if pages == n {
			step = 1
		}
		for k, r := range rs {
			pg := uint64(k) * step
			want := uint64(PageIsWritten)
			if pg%2 == 1 {
				want = oddCats
			}
			if start := base + pg*PageSize; r.Start != start || r.End != start+PageSize || r.Categories != want {
				t.Fatalf("%s: region %d is pages %d-%d categories %#x, want page %d categories %#x",
					what, k, (r.Start-base)/PageSize, (r.End-base)/PageSize-1, r.Categories, pg, want)
			}
		}
	}
	written := ScanArgs{CategoryMask: PageIsWritten, ReturnMask: PageIsWritten}
	checkAlternating("7-region buffer", scan(7, written), n/2, 0)
	checkAlternating("oversized buffer", scan(3*scanVecLen, written), n/2, 0)

	// One category for all pages: one region, however many ioctls it took.
	if got, want := pagesOf(scan(7, ScanArgs{CategoryAnyofMask: PageIsPresent, ReturnMask: PageIsPresent}), base, true), fmt.Sprintf("0-%d:0x8", n-1); got != want {
		t.Errorf("present pages %q, want %q", got, want)
	}

	// Re-arming reports every page; a stale walk_end would have it report
	// re-protected pages a second time.
	rearm := ScanArgs{
		Flags:             ScanWPMatching | ScanCheckWPAsync,
		CategoryAnyofMask: PageIsPresent | PageIsSwapped,
		ReturnMask:        PageIsWritten,
	}
	checkAlternating("re-arming scan", scan(3*scanVecLen, rearm), n, 0)
	if rs := scan(scanVecLen, written); len(rs) != 0 {
		t.Errorf("written after re-arming: %d regions, want none", len(rs))
	}
}

// TestZeroPageCategories records how Linux 6.18 reports pages emptied or
// read under uffd-wp: MADV_DONTNEED drops the protection with the page, so
// the page reads as written, and reading it back maps the zero page, still
// written; a protected page never populated is a marker (swapped, not
// written) and reading it maps the zero page still protected.
func TestZeroPageCategories(t *testing.T) {
	m, base := mapPages(t, 5)
	for _, i := range []int{0, 1, 2} {
		m[i*PageSize] = 1
	}
	pm := openSelf(t)
	newTracker(t, base, 5*PageSize)
	for _, i := range []int{1, 2} {
		if err := unix.Madvise(m[i*PageSize:(i+1)*PageSize], unix.MADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}
	if m[1*PageSize] != 0 || m[4*PageSize] != 0 {
		t.Fatal("an emptied or fresh page does not read 0")
	}
	const all = PageIsWPAllowed | PageIsWritten | PageIsFile | PageIsPresent | PageIsSwapped | PageIsPFNZero | PageIsHuge
	rs, err := pm.ScanRegions(base, base+5*PageSize, ScanArgs{ReturnMask: all})
	if err != nil {
		t.Fatal(err)
	}
	// 0 untouched, 1 emptied then read, 2 emptied, 3 never populated,
	// 4 read after protecting.
	if got, want := pagesOf(rs, base, true), "0:0x9 1:0x2b 2:0x3 3:0x11 4:0x29"; got != want {
		t.Errorf("categories %q, want %q", got, want)
	}
	es, err := pm.Entries(base, base+5*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es {
		t.Logf("page %d: pagemap entry %#016x", i, e)
	}
	if !IsMarker(es[3]) || !IsUffdWP(es[3]) || AnonPages(false)(es[3]) {
		t.Errorf("page 3 (protected, never populated): entry %#x, want a uffd-wp marker that AnonPages skips", es[3])
	}
	if IsUffdWP(es[1]) || !IsUffdWP(es[4]) {
		t.Errorf("uffd-wp bits: emptied then read %v, read after protecting %v; want false, true", IsUffdWP(es[1]), IsUffdWP(es[4]))
	}
	if z, err := ZeroPFN(); err == nil && (PFN(es[1]) != z || PFN(es[4]) != z) {
		t.Errorf("read pages map PFNs %#x and %#x, zero page is %#x", PFN(es[1]), PFN(es[4]), z)
	}
}

// TestScanCheckWPAsyncUnregistered scans a protected VMA and the
// unregistered one after it. Without the check the second one's pages all
// read as written; with it the scan fails with EPERM, and a re-arming scan
// has by then re-protected the first VMA, losing its written pages.
func TestScanCheckWPAsyncUnregistered(t *testing.T) {
	m, base := mapPages(t, 8)
	for i := range 8 {
		m[i*PageSize] = 1
	}
	pm := openSelf(t)
	newTracker(t, base, 4*PageSize) // splits the VMA
	m[1*PageSize], m[3*PageSize] = 2, 2
	end := base + 8*PageSize

	rs, err := pm.ScanRegions(base, end, ScanArgs{ReturnMask: PageIsWPAllowed | PageIsWritten})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pagesOf(rs, base, true), "0:0x1 1:0x3 2:0x1 3:0x3 4-7:0x2"; got != want {
		t.Errorf("categories %q, want %q", got, want)
	}

	_, err = pm.ScanRegions(base, end, ScanArgs{Flags: ScanCheckWPAsync, CategoryMask: PageIsWritten})
	if want := fmt.Sprintf("/proc/%d/pagemap: PAGEMAP_SCAN %#x-%#x at %#x: operation not permitted", os.Getpid(), base, end, base); err == nil || err.Error() != want || !errors.Is(err, unix.EPERM) {
		t.Fatalf("ScanCheckWPAsync over an unregistered VMA: %v, want %q", err, want)
	}
	_, err = pm.ScanRegions(base, end, ScanArgs{Flags: ScanWPMatching | ScanCheckWPAsync, CategoryMask: PageIsWritten})
	if !errors.Is(err, unix.EPERM) {
		t.Fatalf("re-arming ScanCheckWPAsync over an unregistered VMA: %v, want EPERM", err)
	}
	rs, err = pm.ScanRegions(base, base+4*PageSize, ScanArgs{CategoryMask: PageIsWritten})
	if err != nil {
		t.Fatal(err)
	}
	if got := pagesOf(rs, base, false); got != "" {
		t.Errorf("after the failed re-arming scan, written pages %q: the kernel now keeps them", got)
	}
}

func TestRegisterWPError(t *testing.T) {
	u, _, err := NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK | UffdUserModeOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	// Before UFFDIO_API the kernel takes no registration.
	_, base := mapPages(t, 1)
	err = u.RegisterWP(base, PageSize)
	if want := fmt.Sprintf("userfaultfd fd %d: UFFDIO_REGISTER mode WP %#x-%#x: invalid argument", u.Fd(), base, base+PageSize); err == nil || err.Error() != want {
		t.Errorf("RegisterWP before UFFDIO_API: %v, want %q", err, want)
	}
}

func TestAppendRegion(t *testing.T) {
	var rs []Region
	for _, r := range []Region{
		{0x1000, 0x2000, 2},
		{0x2000, 0x4000, 2}, // continues: merged
		{0x4000, 0x5000, 8}, // other categories
		{0x6000, 0x7000, 8}, // gap
	} {
		rs = appendRegion(rs, r)
	}
	want := []Region{{0x1000, 0x4000, 2}, {0x4000, 0x5000, 8}, {0x6000, 0x7000, 8}}
	if fmt.Sprint(rs) != fmt.Sprint(want) {
		t.Errorf("regions %v, want %v", rs, want)
	}
}

func TestScanRegionsUnaligned(t *testing.T) {
	pm := openSelf(t)
	_, err := pm.ScanRegions(0x1001, 0x3000, ScanArgs{})
	if want := fmt.Sprintf("/proc/%d/pagemap: PAGEMAP_SCAN 0x1001-0x3000: not a page-aligned range", os.Getpid()); err == nil || err.Error() != want {
		t.Errorf("unaligned scan: %v, want %q", err, want)
	}
}
