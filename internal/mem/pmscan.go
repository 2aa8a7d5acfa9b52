package mem

import "fmt"

// PAGE_IS_* categories of PAGEMAP_SCAN (linux/fs.h), used in ScanArgs masks
// and reported in Region.Categories.
const (
	PageIsWPAllowed = 1 << 0 // the VMA is registered for async uffd-wp
	// PageIsWritten means the page has no uffd-wp protection: it was written
	// since protected, emptied (MADV_DONTNEED drops the protection with the
	// page), or never protected, as every page of an unregistered VMA.
	PageIsWritten = 1 << 1
	PageIsFile    = 1 << 2
	PageIsPresent = 1 << 3
	// PageIsSwapped includes PTE markers, such as protected pages that are
	// not populated: see IsMarker.
	PageIsSwapped   = 1 << 4
	PageIsPFNZero   = 1 << 5 // maps the shared zero page
	PageIsHuge      = 1 << 6
	PageIsSoftDirty = 1 << 7
	PageIsGuard     = 1 << 8 // a MADV_GUARD_INSTALL guard page (Linux 6.15+)
)

// PAGEMAP_SCAN flags.
const (
	// ScanWPMatching write-protects the pages reported, re-arming the
	// tracker in the same walk that reads it; the categories reported are
	// those from before. Only matching pages are protected: an emptied page
	// stays written unless the scan matches PageIsWritten.
	ScanWPMatching = 1 << 0
	// ScanCheckWPAsync fails the scan with EPERM on a VMA not registered for
	// async uffd-wp, instead of reporting its pages as written. The kernel
	// checks each VMA as it gets there: with ScanWPMatching, pages of the
	// VMAs before it are already re-protected and their written state lost.
	ScanCheckWPAsync = 1 << 1
)

// Region is a run of pages [Start, End) sharing the categories kept by the
// scan's ReturnMask (struct page_region).
type Region struct {
	Start, End uint64
	Categories uint64
}

// ScanArgs are the struct pm_scan_arg fields a caller chooses. A page is
// reported when, with its categories XORed with CategoryInverted, it has all
// of CategoryMask and (if non-zero) any of CategoryAnyofMask.
type ScanArgs struct {
	Flags             uint64
	CategoryInverted  uint64
	CategoryMask      uint64
	CategoryAnyofMask uint64
	ReturnMask        uint64
}

// scanVecLen is the size of the region buffer a Pagemap keeps for
// PAGEMAP_SCAN: that of the kernel's own bounce buffer (PAGEMAP_WALK_SIZE >>
// PAGE_SHIFT). A larger one saves no kernel work, and makes Linux 6.18
// report a stale walk_end when it fills its bounce buffer and then finishes.
const scanVecLen = 512

// ScanRegions runs PAGEMAP_SCAN over [start, end), repeating it from where
// the kernel stopped whenever the region buffer fills, and returns the
// regions in address order, a region that continues the previous one with
// the same categories merged into it.
func (p *Pagemap) ScanRegions(start, end uint64, a ScanArgs) ([]Region, error) {
	if start%PageSize != 0 || end%PageSize != 0 || end < start {
		return nil, fmt.Errorf("%s: PAGEMAP_SCAN %#x-%#x: not a page-aligned range", p.f.Name(), start, end)
	}
	if len(p.vec) == 0 {
		p.vec = make([]Region, scanVecLen)
	}
	var out []Region
	for addr := start; addr < end; {
		n, walkEnd, err := p.scanOnce(addr, end, a)
		if err != nil {
			return nil, fmt.Errorf("%s: PAGEMAP_SCAN %#x-%#x at %#x: %w", p.f.Name(), start, end, addr, err)
		}
		for _, r := range p.vec[:n] {
			if k := len(out); r.Start < addr || r.End <= r.Start || r.End > end || k > 0 && r.Start < out[k-1].End {
				return nil, fmt.Errorf("%s: PAGEMAP_SCAN %#x-%#x at %#x: the kernel reported region %#x-%#x out of order", p.f.Name(), start, end, addr, r.Start, r.End)
			}
			out = appendRegion(out, r)
		}
		// Every page up to the last region reported was walked, whatever
		// walk_end says.
		if n > 0 {
			walkEnd = max(walkEnd, p.vec[n-1].End)
		}
		if walkEnd <= addr || walkEnd > end {
			return nil, fmt.Errorf("%s: PAGEMAP_SCAN %#x-%#x at %#x: the kernel says its walk ended at %#x", p.f.Name(), start, end, addr, walkEnd)
		}
		addr = walkEnd
	}
	return out, nil
}

// scanOnce runs one PAGEMAP_SCAN into p.vec.
func (p *Pagemap) scanOnce(start, end uint64, a ScanArgs) (n int, walkEnd uint64, err error) {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	cerr := rc.Control(func(fd uintptr) {
		n, walkEnd, err = pagemapScanInto(int(fd), start, end, a, p.vec)
	})
	if cerr != nil {
		return 0, 0, cerr
	}
	return n, walkEnd, err
}

// appendRegion appends r to rs, extending the last region instead when r
// continues it with the same categories.
func appendRegion(rs []Region, r Region) []Region {
	if k := len(rs); k > 0 && rs[k-1].End == r.Start && rs[k-1].Categories == r.Categories {
		rs[k-1].End = r.End
		return rs
	}
	return append(rs, r)
}
