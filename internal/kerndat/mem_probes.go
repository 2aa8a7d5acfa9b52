package kerndat

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"

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

var uffdFeatureNames = []string{
	"WP", "EVENT_FORK", "EVENT_REMAP", "EVENT_REMOVE", "MISSING_HUGETLBFS",
	"MISSING_SHMEM", "EVENT_UNMAP", "SIGBUS", "THREAD_ID", "MINOR_HUGETLBFS",
	"MINOR_SHMEM", "EXACT_ADDRESS", "WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED",
	"POISON", "WP_ASYNC", "MOVE",
}

// UffdFeatureString names feature bits; MISSING (always there once the API
// handshake works) comes first, WP stands for UFFD_FEATURE_PAGEFAULT_FLAG_WP
// (write-protect mode is available).
func UffdFeatureString(bits uint64) string {
	names := []string{"MISSING"}
	for i, n := range uffdFeatureNames {
		if bits&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := bits &^ (1<<len(uffdFeatureNames) - 1); rest != 0 {
		names = append(names, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(names, " ")
}

// uffdFeatureBits holds what the userfaultfd probe found.
var uffdFeatureBits atomic.Uint64

// newUffd creates a userfaultfd: the syscall first, then /dev/userfaultfd
// (Linux 6.1+), which works for whoever may open the device even when
// vm.unprivileged_userfaultfd forbids the syscall. It says which it used.
func newUffd() (int, string, error) {
	const flags = unix.O_CLOEXEC | unix.O_NONBLOCK
	fd, _, e := unix.Syscall(unix.SYS_USERFAULTFD, flags, 0, 0)
	if e == 0 {
		return int(fd), "userfaultfd(2)", nil
	}
	sysErr := fmt.Errorf("userfaultfd(2): %w", e)
	dev, err := os.OpenFile("/dev/userfaultfd", os.O_RDWR, 0)
	if err != nil {
		return -1, "", fmt.Errorf("%w; %w", sysErr, err)
	}
	defer dev.Close()
	// USERFAULTFD_IOC_NEW takes the flags as its argument.
	fd2, _, e2 := unix.Syscall(unix.SYS_IOCTL, dev.Fd(), userfaultfdIocNew, flags)
	if e2 != 0 {
		return -1, "", fmt.Errorf("%w; /dev/userfaultfd USERFAULTFD_IOC_NEW: %w", sysErr, e2)
	}
	return int(fd2), "/dev/userfaultfd", nil
}

func uffdFailure(err error) Result {
	r := fail(err)
	switch errnoOf(err) {
	case unix.ENOSYS:
		r.Detail += " (CONFIG_USERFAULTFD is not set)"
	case unix.EPERM, unix.EACCES:
		r.Detail += " (needs CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1, or access to /dev/userfaultfd)"
	}
	return r
}

func probeUserfaultfd() Result {
	fd, how, err := newUffd()
	if err != nil {
		return uffdFailure(err)
	}
	defer unix.Close(fd)
	api, err := uffdAPIHandshake(fd, 0)
	if err != nil {
		return uffdFailure(fmt.Errorf("UFFDIO_API: %w", err))
	}
	uffdFeatureBits.Store(api.Features)
	r := ok("%s, UFFDIO_API features: %s", how, UffdFeatureString(api.Features))
	return r
}

func probeUffdWPAsync() Result {
	if u := must("userfaultfd"); !u.Supported {
		return failf("userfaultfd does not work: %s", u.Detail)
	}
	bits := uffdFeatureBits.Load()
	if bits&UffdFeatureWPAsync == 0 {
		return kernelTooOld("the kernel offers no UFFD_FEATURE_WP_ASYNC", 6, 7, "CONFIG_PTE_MARKER_UFFD_WP")
	}
	fd, _, err := newUffd()
	if err != nil {
		return uffdFailure(err)
	}
	defer unix.Close(fd)
	if _, err := uffdAPIHandshake(fd, wpAsyncFeatures(bits)); err != nil {
		return fail(fmt.Errorf("UFFDIO_API with UFFD_FEATURE_WP_ASYNC: %w", err))
	}
	return ok("UFFDIO_API accepted UFFD_FEATURE_WP_ASYNC")
}

// wpAsyncFeatures is what a dirty tracker asks for: WP_ASYNC, and
// WP_UNPOPULATED when offered so pages never touched are tracked too.
func wpAsyncFeatures(offered uint64) uint64 {
	return UffdFeatureWPAsync | offered&UffdFeatureWPUnpopulated
}

// kernelTooOld builds a failure that names the minimum version and says
// whether the running kernel has it.
func kernelTooOld(what string, major, minor int, config string) Result {
	v, err := KernelVersion()
	switch {
	case err != nil:
		return failf("%s (Linux %d.%d+ needed)", what, major, minor)
	case !v.AtLeast(major, minor):
		return failf("%s: Linux %s is older than %d.%d", what, v, major, minor)
	case config != "" && configOption(config) == "n":
		return failf("%s: %s is not set in this kernel", what, config)
	default:
		return failf("%s although Linux %s is %d.%d or newer", what, v, major, minor)
	}
}

// scratchPages maps n private anonymous pages of our own.
func scratchPages(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap %d pages: %w", n, err)
	}
	return b, nil
}

// regionsString prints regions as page indexes relative to base.
func regionsString(rs []pageRegion, base uint64) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("pages %d-%d", (r.Start-base)/pageSize, (r.End-base)/pageSize-1))
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// onlyPage reports whether rs is exactly page i of the area at base.
func onlyPage(rs []pageRegion, base uint64, i int) bool {
	return len(rs) == 1 && rs[0].Start == base+uint64(i)*pageSize && rs[0].End == rs[0].Start+pageSize
}

func probePagemapScan() Result {
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return fail(err)
	}
	defer pm.Close()
	const n = 4
	mem, err := scratchPages(n)
	if err != nil {
		return fail(err)
	}
	defer unix.Munmap(mem)
	base := addrOf(mem)
	end := base + n*pageSize

	// Plain PAGEMAP_SCAN: one touched page is present, the others not.
	mem[0] = 1
	rs, err := pagemapScanRegions(int(pm.Fd()), 0, base, end, pageIsPresent)
	if err != nil {
		e := errnoOf(err)
		if e == unix.ENOTTY || e == unix.EINVAL {
			r := kernelTooOld(fmt.Sprintf("PAGEMAP_SCAN ioctl: %v", err), 6, 7, "")
			r.Err = err
			return r
		}
		return fail(fmt.Errorf("PAGEMAP_SCAN: %w", err))
	}
	if !onlyPage(rs, base, 0) {
		return failf("PAGEMAP_SCAN PAGE_IS_PRESENT after touching page 0 of %d reported %s", n, regionsString(rs, base))
	}

	// uffd-wp dirty tracking, as pre-dump uses it.
	if a := must("uffd_wp_async"); !a.Supported {
		return failf("PAGEMAP_SCAN works, but written-page tracking needs uffd WP_ASYNC: %s", a.Detail)
	}
	fd, _, err := newUffd()
	if err != nil {
		return uffdFailure(err)
	}
	defer unix.Close(fd)
	if _, err := uffdAPIHandshake(fd, wpAsyncFeatures(uffdFeatureBits.Load())); err != nil {
		return fail(fmt.Errorf("UFFDIO_API with WP_ASYNC: %w", err))
	}
	for i := range n {
		mem[i*pageSize] = 2 // populate every page before protecting
	}
	if err := uffdRegisterWP(fd, base, n*pageSize); err != nil {
		return fail(fmt.Errorf("UFFDIO_REGISTER mode WP: %w", err))
	}
	if err := uffdWriteprotect(fd, base, n*pageSize); err != nil {
		return fail(fmt.Errorf("UFFDIO_WRITEPROTECT: %w", err))
	}
	written := func() ([]pageRegion, error) {
		return pagemapScanRegions(int(pm.Fd()), 0, base, end, pageIsWritten)
	}
	if rs, err := written(); err != nil || len(rs) != 0 {
		return failf("PAGEMAP_SCAN PAGE_IS_WRITTEN right after write-protecting: %s, %v", regionsString(rs, base), err)
	}
	mem[1*pageSize] = 3                // written
	runtime.KeepAlive(mem[2*pageSize]) // read only
	rs, err = written()
	if err != nil {
		return fail(fmt.Errorf("PAGEMAP_SCAN PAGE_IS_WRITTEN: %w", err))
	}
	if !onlyPage(rs, base, 1) {
		return failf("wrote page 1 and read page 2 of a WP_ASYNC area; PAGEMAP_SCAN PAGE_IS_WRITTEN reported %s", regionsString(rs, base))
	}
	// Re-arm the way the next pre-dump does, then write another page.
	if _, err := pagemapScanRegions(int(pm.Fd()), pmScanWPMatching|pmScanCheckWPAsync, base, end, pageIsWritten); err != nil {
		return fail(fmt.Errorf("PAGEMAP_SCAN PM_SCAN_WP_MATCHING: %w", err))
	}
	mem[3*pageSize] = 4
	rs, err = written()
	if err != nil {
		return fail(fmt.Errorf("PAGEMAP_SCAN PAGE_IS_WRITTEN: %w", err))
	}
	if !onlyPage(rs, base, 3) {
		return failf("after re-protecting with PM_SCAN_WP_MATCHING and writing page 3, PAGE_IS_WRITTEN reported %s", regionsString(rs, base))
	}
	return ok("PAGEMAP_SCAN PAGE_IS_WRITTEN on a uffd WP_ASYNC area reported the written page and not the untouched or read ones, also after re-protecting with PM_SCAN_WP_MATCHING")
}

const pmSoftDirty = 1 << 55

// pagemapEntry reads our own pagemap entry for addr.
func pagemapEntry(pm *os.File, addr uint64) (uint64, error) {
	b := make([]byte, 8)
	if _, err := pm.ReadAt(b, int64(addr/pageSize*8)); err != nil {
		return 0, fmt.Errorf("read /proc/self/pagemap: %w", err)
	}
	return binary.NativeEndian.Uint64(b), nil
}

func probeSoftDirty() Result {
	pm, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return fail(err)
	}
	defer pm.Close()
	mem, err := scratchPages(1)
	if err != nil {
		return fail(err)
	}
	defer unix.Munmap(mem)
	addr := addrOf(mem)
	mem[0] = 1
	if err := os.WriteFile("/proc/self/clear_refs", []byte("4"), 0); err != nil {
		return fail(fmt.Errorf("write 4 to /proc/self/clear_refs: %w", err))
	}
	before, err := pagemapEntry(pm, addr)
	if err != nil {
		return fail(err)
	}
	mem[0] = 2
	after, err := pagemapEntry(pm, addr)
	if err != nil {
		return fail(err)
	}
	switch {
	case before&pmSoftDirty != 0:
		return failf("pagemap bit 55 stayed 1 after clear_refs 4: soft-dirty bits cannot be cleared")
	case after&pmSoftDirty == 0:
		observed := "pagemap bit 55 stayed 0 after a write following clear_refs 4"
		switch configOption("CONFIG_MEM_SOFT_DIRTY") {
		case "n":
			return failf("CONFIG_MEM_SOFT_DIRTY is not set in this kernel; %s", observed)
		case "":
			return failf("%s: the kernel was probably built without CONFIG_MEM_SOFT_DIRTY", observed)
		default:
			return failf("%s although CONFIG_MEM_SOFT_DIRTY is set", observed)
		}
	}
	return ok("pagemap bit 55 went 0 after clear_refs 4, then 1 after a write")
}

func probeMemDirtyTrack() Result {
	uffd, sd := must("pagemap_scan"), must("soft_dirty")
	var works, not []string
	if uffd.Supported {
		works = append(works, TrackerUffdWP)
	} else {
		not = append(not, "uffd-wp: "+uffd.Detail)
	}
	if sd.Supported {
		works = append(works, TrackerSoftDirty)
	} else {
		not = append(not, "soft-dirty: "+sd.Detail)
	}
	const fallback = "content hashes need no kernel help and remain the fallback (they save transfer and disk, not read time)"
	if len(works) == 0 {
		return failf("no kernel dirty tracker works (%s); %s", strings.Join(not, "; "), fallback)
	}
	r := ok("kernel trackers that work: %s", strings.Join(works, ", "))
	if len(not) > 0 {
		r.Detail += "; not available: " + strings.Join(not, "; ")
	}
	r.Detail += "; " + fallback
	r.Summary = strings.Join(works, ", ")
	if !sd.Supported {
		r.Summary += "; no soft-dirty"
	}
	r.Summary += "; content hashes as fallback"
	return r
}

func probeMemfd() Result {
	fd, err := unix.MemfdCreate("gockpt-kerndat", unix.MFD_CLOEXEC)
	if err != nil {
		r := fail(fmt.Errorf("memfd_create: %w", err))
		if errnoOf(err) == unix.ENOSYS {
			r.Detail += " (Linux 3.17+ with CONFIG_MEMFD_CREATE needed)"
		}
		return r
	}
	defer unix.Close(fd)
	if _, err := unix.Pwrite(fd, make([]byte, pageSize), 0); err != nil {
		return fail(fmt.Errorf("write to memfd: %w", err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(err)
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return fail(err)
	}
	if st.Size != pageSize || !strings.HasPrefix(link, "/memfd:gockpt-kerndat") {
		return failf("memfd: size %d after writing %d bytes, /proc/self/fd link %q", st.Size, pageSize, link)
	}
	return ok("memfd_create gave %s holding the bytes written", link)
}
