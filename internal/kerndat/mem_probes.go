package kerndat

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/mem"
)

// UFFD_FEATURE_* bits (linux/userfaultfd.h), in bit order; internal/mem
// owns the ABI.
const (
	UffdFeaturePagefaultFlagWP  = mem.UffdFeaturePagefaultFlagWP
	UffdFeatureEventFork        = mem.UffdFeatureEventFork
	UffdFeatureEventRemap       = mem.UffdFeatureEventRemap
	UffdFeatureEventRemove      = mem.UffdFeatureEventRemove
	UffdFeatureMissingHugetlbfs = mem.UffdFeatureMissingHugetlbfs
	UffdFeatureMissingShmem     = mem.UffdFeatureMissingShmem
	UffdFeatureEventUnmap       = mem.UffdFeatureEventUnmap
	UffdFeatureSigbus           = mem.UffdFeatureSigbus
	UffdFeatureThreadID         = mem.UffdFeatureThreadID
	UffdFeatureMinorHugetlbfs   = mem.UffdFeatureMinorHugetlbfs
	UffdFeatureMinorShmem       = mem.UffdFeatureMinorShmem
	UffdFeatureExactAddress     = mem.UffdFeatureExactAddress
	UffdFeatureWPHugetlbfsShmem = mem.UffdFeatureWPHugetlbfsShmem
	UffdFeatureWPUnpopulated    = mem.UffdFeatureWPUnpopulated
	UffdFeaturePoison           = mem.UffdFeaturePoison
	UffdFeatureWPAsync          = mem.UffdFeatureWPAsync
	UffdFeatureMove             = mem.UffdFeatureMove
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

// newUffd creates a userfaultfd of our own and says how.
func newUffd() (*mem.Uffd, string, error) {
	return mem.NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK)
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
	u, how, err := newUffd()
	if err != nil {
		return uffdFailure(err)
	}
	defer u.Close()
	features, err := u.Handshake(0)
	if err != nil {
		return uffdFailure(err)
	}
	uffdFeatureBits.Store(features)
	return ok("%s, UFFDIO_API features: %s", how, UffdFeatureString(features))
}

func probeUffdWPAsync() Result {
	if u := must("userfaultfd"); !u.Supported {
		return failf("userfaultfd does not work: %s", u.Detail)
	}
	bits := uffdFeatureBits.Load()
	if bits&UffdFeatureWPAsync == 0 {
		return kernelTooOld("the kernel offers no UFFD_FEATURE_WP_ASYNC", 6, 7, "CONFIG_PTE_MARKER_UFFD_WP")
	}
	u, _, err := newUffd()
	if err != nil {
		return uffdFailure(err)
	}
	defer u.Close()
	if _, err := u.HandshakeWPAsync(); err != nil {
		return fail(err)
	}
	return ok("UFFDIO_API accepted UFFD_FEATURE_WP_ASYNC")
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
func regionsString(rs []mem.Region, base uint64) string {
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
func onlyPage(rs []mem.Region, base uint64, i int) bool {
	return len(rs) == 1 && rs[0].Start == base+uint64(i)*pageSize && rs[0].End == rs[0].Start+pageSize
}

func probePagemapScan() Result {
	pm, err := mem.OpenPagemap(os.Getpid())
	if err != nil {
		return fail(err)
	}
	defer pm.Close()
	const n = 4
	area, err := scratchPages(n)
	if err != nil {
		return fail(err)
	}
	defer unix.Munmap(area)
	base := addrOf(area)
	end := base + n*pageSize
	scan := func(flags, mask uint64) ([]mem.Region, error) {
		return pm.ScanRegions(base, end, mem.ScanArgs{Flags: flags, CategoryMask: mask, ReturnMask: mask})
	}

	// Plain PAGEMAP_SCAN: one touched page is present, the others not.
	area[0] = 1
	rs, err := scan(0, mem.PageIsPresent)
	if err != nil {
		e := errnoOf(err)
		if e == unix.ENOTTY || e == unix.EINVAL {
			r := kernelTooOld(err.Error(), 6, 7, "")
			r.Err = err
			return r
		}
		return fail(err)
	}
	if !onlyPage(rs, base, 0) {
		return failf("PAGEMAP_SCAN PAGE_IS_PRESENT after touching page 0 of %d reported %s", n, regionsString(rs, base))
	}

	// uffd-wp dirty tracking, as pre-dump uses it.
	if a := must("uffd_wp_async"); !a.Supported {
		return failf("PAGEMAP_SCAN works, but written-page tracking needs uffd WP_ASYNC: %s", a.Detail)
	}
	u, _, err := newUffd()
	if err != nil {
		return uffdFailure(err)
	}
	defer u.Close()
	if _, err := u.HandshakeWPAsync(); err != nil {
		return fail(err)
	}
	for i := range n {
		area[i*pageSize] = 2 // populate every page before protecting
	}
	if err := u.RegisterWP(base, n*pageSize); err != nil {
		return fail(err)
	}
	if err := u.WriteProtect(base, n*pageSize); err != nil {
		return fail(err)
	}
	written := func() ([]mem.Region, error) { return scan(0, mem.PageIsWritten) }
	if rs, err := written(); err != nil || len(rs) != 0 {
		return failf("PAGEMAP_SCAN PAGE_IS_WRITTEN right after write-protecting: %s, %v", regionsString(rs, base), err)
	}
	area[1*pageSize] = 3                // written
	runtime.KeepAlive(area[2*pageSize]) // read only
	rs, err = written()
	if err != nil {
		return fail(err)
	}
	if !onlyPage(rs, base, 1) {
		return failf("wrote page 1 and read page 2 of a WP_ASYNC area; PAGEMAP_SCAN PAGE_IS_WRITTEN reported %s", regionsString(rs, base))
	}
	// Re-arm the way the next pre-dump does, then write another page.
	if _, err := scan(mem.ScanWPMatching|mem.ScanCheckWPAsync, mem.PageIsWritten); err != nil {
		return fail(fmt.Errorf("re-protecting with PM_SCAN_WP_MATCHING: %w", err))
	}
	area[3*pageSize] = 4
	rs, err = written()
	if err != nil {
		return fail(err)
	}
	if !onlyPage(rs, base, 3) {
		return failf("after re-protecting with PM_SCAN_WP_MATCHING and writing page 3, PAGE_IS_WRITTEN reported %s", regionsString(rs, base))
	}
	return ok("PAGEMAP_SCAN PAGE_IS_WRITTEN on a uffd WP_ASYNC area reported the written page and not the untouched or read ones, also after re-protecting with PM_SCAN_WP_MATCHING")
}

// softDirtyBit reads the soft-dirty bit of our own page at addr.
func softDirtyBit(pm *mem.Pagemap, addr uint64) (bool, error) {
	es, err := pm.Entries(addr, addr+pageSize)
	if err != nil {
		return false, err
	}
	return mem.IsSoftDirty(es[0]), nil
}

func probeSoftDirty() Result {
	pm, err := mem.OpenPagemap(os.Getpid())
	if err != nil {
		return fail(err)
	}
	defer pm.Close()
	area, err := scratchPages(1)
	if err != nil {
		return fail(err)
	}
	defer unix.Munmap(area)
	addr := addrOf(area)
	area[0] = 1
	if err := mem.ClearSoftDirty(os.Getpid()); err != nil {
		return fail(err)
	}
	before, err := softDirtyBit(pm, addr)
	if err != nil {
		return fail(err)
	}
	area[0] = 2
	after, err := softDirtyBit(pm, addr)
	if err != nil {
		return fail(err)
	}
	switch {
	case before:
		return failf("pagemap bit 55 stayed 1 after clear_refs 4: soft-dirty bits cannot be cleared")
	case !after:
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
	r := ok("pre-dump --track-mem uses %s; kernel trackers that work: %s", works[0], strings.Join(works, ", "))
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
