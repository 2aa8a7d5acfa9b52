// Package mem finds which pages of a task hold data worth saving: present or
// swapped pages from /proc/PID/pagemap, narrowed by dirty trackers for
// incremental dumps.
package mem

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// PageSize is the x86-64 base page size.
const PageSize = 4096

// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent     = 1 << 63
	pmSwapped     = 1 << 62
	pmFileShared  = 1 << 61
	pmGuardRegion = 1 << 58
	pmUffdWP      = 1 << 57
	pmExclusive   = 1 << 56
	pmSoftDirty   = 1 << 55
	pmPFNMask     = 1<<55 - 1

	// A swapped entry's frame field holds the swap type in its low 5 bits.
	// The last type, 31, is SWP_PTE_MARKER.
	pmSwapTypeMask = 1<<5 - 1
	swapTypeMarker = 31
)

// IsMarker reports an entry for a PTE marker: a page that holds nothing
// but a note, left by write-protecting an unpopulated page with uffd-wp
// (WP_UNPOPULATED) and by MADV_GUARD_INSTALL. The kernel reports markers as
// swapped; only guard markers can be told apart when PFNs (and so swap
// types) are hidden.
func IsMarker(e uint64) bool {
	return e&pmSwapped != 0 && (e&pmGuardRegion != 0 || e&pmSwapTypeMask == swapTypeMarker)
}

// IsUffdWP reports the uffd-wp bit: the page is write-protected and has not
// been written since.
func IsUffdWP(e uint64) bool { return e&pmUffdWP != 0 }

// PFN is the page frame number of a present page's entry; it reads 0 when the
// pagemap was opened without CAP_SYS_ADMIN.
func PFN(e uint64) uint64 { return e & pmPFNMask }

// Range is a run of pages [Start, Start+Len) in the task's address space.
type Range struct {
	Start uint64
	Len   uint64
}

// End is one past the last byte.
func (r Range) End() uint64 { return r.Start + r.Len }

// Pages is the number of pages in the range.
func (r Range) Pages() uint64 { return r.Len / PageSize }

// Pagemap reads a task's /proc/PID/pagemap.
type Pagemap struct {
	f   *os.File
	buf []byte
	vec []Region // PAGEMAP_SCAN output, kept between scans
}

// OpenPagemap opens /proc/pid/pagemap.
func OpenPagemap(pid int) (*Pagemap, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	return &Pagemap{f: f, buf: make([]byte, 8*4096)}, nil
}

// Close closes the pagemap file.
func (p *Pagemap) Close() error { return p.f.Close() }

// Selector says which pagemap entries are worth dumping.
type Selector func(entry uint64) bool

// AnonPages selects pages with private content: present or swapped. For a
// private file mapping it skips pages still shared with the page cache (the
// file bit is set until the first write copies the page), since restore maps
// the same file and gets them back from it. PTE markers look swapped but
// hold nothing, and reading a guard page faults, so they are skipped too.
func AnonPages(privateFile bool) Selector {
	return func(e uint64) bool {
		if e&(pmPresent|pmSwapped) == 0 || IsMarker(e) {
			return false
		}
		if privateFile && e&pmFileShared != 0 {
			return false
		}
		return true
	}
}

// SoftDirty selects present or swapped pages written since the last clear_refs.
func SoftDirty(e uint64) bool {
	return e&(pmPresent|pmSwapped) != 0 && e&pmSoftDirty != 0
}

// Scan returns the runs of pages in [start, end) whose entries sel accepts,
// merged into maximal ranges.
func (p *Pagemap) Scan(start, end uint64, sel Selector) ([]Range, error) {
	var out []Range
	for addr := start; addr < end; {
		n := (end - addr) / PageSize
		if max := uint64(len(p.buf) / 8); n > max {
			n = max
		}
		b := p.buf[:n*8]
		if _, err := p.f.ReadAt(b, int64(addr/PageSize*8)); err != nil && err != io.EOF {
			return nil, fmt.Errorf("%s at %#x: %w", p.f.Name(), addr, err)
		}
		for i := uint64(0); i < n; i++ {
			if !sel(binary.LittleEndian.Uint64(b[i*8:])) {
				continue
			}
			a := addr + i*PageSize
			if k := len(out); k > 0 && out[k-1].End() == a {
				out[k-1].Len += PageSize
			} else {
				out = append(out, Range{Start: a, Len: PageSize})
			}
		}
		addr += n * PageSize
	}
	return out, nil
}

// Entries returns the raw pagemap entries of the pages in [start, end), one
// per page, for callers that combine bits a Selector sees only one at a time.
func (p *Pagemap) Entries(start, end uint64) ([]uint64, error) {
	if start%PageSize != 0 || end%PageSize != 0 || end < start {
		return nil, fmt.Errorf("%s: entries %#x-%#x: not a page-aligned range", p.f.Name(), start, end)
	}
	out := make([]uint64, 0, (end-start)/PageSize)
	for addr := start; addr < end; {
		n := min((end-addr)/PageSize, uint64(len(p.buf)/8))
		b := p.buf[:n*8]
		if _, err := p.f.ReadAt(b, int64(addr/PageSize*8)); err != nil {
			return nil, fmt.Errorf("%s at %#x: %w", p.f.Name(), addr, err)
		}
		for i := range n {
			out = append(out, binary.LittleEndian.Uint64(b[i*8:]))
		}
		addr += n * PageSize
	}
	return out, nil
}
