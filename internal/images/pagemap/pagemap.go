// Package pagemap reads and writes a task's memory pages: pagemap-PID.img
// lists runs of pages, pages-N.img holds the data of the runs marked
// present, in the same order. Runs marked parent live in the images
// directory the "parent" link points to (incremental dumps).
package pagemap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// PageSize is the x86-64 page size, the unit of every pagemap entry.
const PageSize = 4096

// Entry flags, as CRIU's criu/include/pagemap.h defines them.
const (
	FlagParent  uint32 = 1 << 0 // data is in the parent images
	FlagLazy    uint32 = 1 << 1 // may be restored lazily (post-copy)
	FlagPresent uint32 = 1 << 2 // data is in this directory's pages-N.img
)

// maxPages bounds one entry so that vaddr + length cannot wrap.
const maxPages = 1 << 52 / PageSize

// maxParentDepth bounds the parent chain; one pre-dump per minute for an
// hour stays below it.
const maxParentDepth = 64

// Entry is a run of pages.
type Entry struct {
	Vaddr   uint64
	NrPages uint64
	Flags   uint32
}

// End returns the address after the run.
func (e Entry) End() uint64 { return e.Vaddr + e.NrPages*PageSize }

// Contains tells whether addr lies in the run.
func (e Entry) Contains(addr uint64) bool { return addr >= e.Vaddr && addr < e.End() }

func (e Entry) String() string {
	return fmt.Sprintf("%#x-%#x (%d pages, %s)", e.Vaddr, e.End(), e.NrPages, images.FlagString("pmap.flags", uint64(e.Flags)))
}

// ErrNotDumped means no entry covers an address: the page was never
// touched (reads as zeros) or lies outside every dumped mapping.
var ErrNotDumped = errors.New("page not in the pagemap")

// Parse reads a pagemap image and checks that its entries are page-aligned,
// sorted and non-overlapping, as restore needs them.
func Parse(r io.Reader, name string) (pagesID uint32, entries []Entry, err error) {
	ir, err := images.NewReader(r, name)
	if err != nil {
		return 0, nil, err
	}
	if ir.Kind() != images.KindPagemap {
		return 0, nil, fmt.Errorf("%s: a %s image, not a pagemap", name, ir.Kind().Name)
	}
	var head pb.PagemapHead
	if _, err := ir.ReadEntry(&head); err != nil {
		if err == io.EOF {
			return 0, nil, &images.FormatError{File: name, Offset: ir.Offset(), Msg: "no pagemap head"}
		}
		return 0, nil, err
	}
	for {
		e, err := ir.Next()
		if err == io.EOF {
			return head.GetPagesId(), entries, nil
		}
		if err != nil {
			return 0, nil, err
		}
		pe := e.Msg.(*pb.PagemapEntry)
		nr, flags := images.PagemapEntryPages(pe)
		ent := Entry{Vaddr: pe.GetVaddr(), NrPages: nr, Flags: flags}
		bad := func(format string, args ...any) error {
			return &images.FormatError{File: name, Offset: e.Offset, Msg: fmt.Sprintf(format, args...)}
		}
		switch {
		case ent.Vaddr%PageSize != 0:
			return 0, nil, bad("entry at %#x is not page-aligned", ent.Vaddr)
		case nr == 0 || nr > maxPages || ent.Vaddr+nr*PageSize < ent.Vaddr:
			return 0, nil, bad("entry at %#x has an impossible page count %d", ent.Vaddr, nr)
		case len(entries) > 0 && ent.Vaddr < entries[len(entries)-1].End():
			return 0, nil, bad("entry %s overlaps or precedes %s", ent, entries[len(entries)-1])
		}
		entries = append(entries, ent)
	}
}

// Reader finds the data of a task's pages, following the parent chain.
type Reader struct {
	dir     *images.Dir
	file    string // the pagemap image's name in dir
	name    string
	entries []Entry
	offsets []int64 // where each present entry's data starts in pages
	pages   *os.File
	seen    map[string]bool // real paths of this directory and its children
	parent  *Reader         // opened on first need
}

// Open reads pagemap-PID.img of d and opens the pages file it names.
func Open(d *images.Dir, pid int) (*Reader, error) {
	return open(d, images.PagemapFile(pid), map[string]bool{})
}

// OpenNamed reads the pagemap image file of d (a task's or a shared memory
// object's) and opens the pages file it names.
func OpenNamed(d *images.Dir, file string) (*Reader, error) {
	return open(d, file, map[string]bool{})
}

func open(d *images.Dir, file string, seen map[string]bool) (*Reader, error) {
	real, err := d.RealPath()
	if err != nil {
		return nil, err
	}
	if seen[real] {
		return nil, fmt.Errorf("parent link loop: %s is its own ancestor", real)
	}
	if len(seen) >= maxParentDepth {
		return nil, fmt.Errorf("more than %d parent directories above %s", maxParentDepth, real)
	}
	seen[real] = true
	name := d.Join(file)
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what(file), err)
	}
	defer f.Close()
	id, entries, err := Parse(f, name)
	if err != nil {
		return nil, err
	}
	r := &Reader{dir: d, file: file, name: name, entries: entries, seen: seen}
	var total int64
	r.offsets = make([]int64, len(entries))
	for i, e := range entries {
		r.offsets[i] = total
		if e.Flags&FlagPresent != 0 {
			total += int64(e.NrPages) * PageSize
		}
	}
	if r.pages, err = d.OpenFile(images.PagesFile(id)); err != nil {
		return nil, fmt.Errorf("%s: %w", what(file), err)
	}
	st, err := r.pages.Stat()
	if err != nil {
		r.pages.Close()
		return nil, err
	}
	// Several tasks share one pages file only when it is shared memory;
	// a task's own file must hold at least its present pages.
	if st.Size() < total {
		r.pages.Close()
		return nil, fmt.Errorf("%s holds %d bytes but %s lists %d bytes of present pages: the dump is incomplete",
			r.pages.Name(), st.Size(), name, total)
	}
	return r, nil
}

// what names the memory a pagemap image holds, for errors.
func what(file string) string {
	var id uint64
	if n, _ := fmt.Sscanf(file, "pagemap-shmem-%d.img", &id); n == 1 {
		return fmt.Sprintf("shared memory %d pages", id)
	}
	if n, _ := fmt.Sscanf(file, "pagemap-%d.img", &id); n == 1 {
		return fmt.Sprintf("task %d pages", id)
	}
	return file
}

// OpenMap reads only the runs of a pagemap image (no pages file): for a
// pre-dump whose pages went to a page server, what it sent is all the next
// iteration needs to know. ReadAt fails on such a reader.
func OpenMap(d *images.Dir, file string) (*Reader, error) {
	name := d.Join(file)
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what(file), err)
	}
	defer f.Close()
	_, entries, err := Parse(f, name)
	if err != nil {
		return nil, err
	}
	return &Reader{dir: d, file: file, name: name, entries: entries, seen: map[string]bool{}}, nil
}

// Covers checks that the runs of r (and of its parents, for runs r leaves
// to them) hold every page of [start, end).
func (r *Reader) Covers(start, end uint64) error { return r.covers(start, end) }

// Entries returns the runs, in address order.
func (r *Reader) Entries() []Entry { return r.entries }

// Close closes the pages files of this reader and its parents.
func (r *Reader) Close() error {
	var err error
	if r.parent != nil {
		err = r.parent.Close()
	}
	if r.pages == nil {
		return err
	}
	if cerr := r.pages.Close(); err == nil {
		err = cerr
	}
	return err
}

// find returns the index of the entry holding addr, or -1.
func (r *Reader) find(addr uint64) int {
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].End() > addr })
	if i < len(r.entries) && r.entries[i].Contains(addr) {
		return i
	}
	return -1
}

// Find returns the entry holding addr.
func (r *Reader) Find(addr uint64) (Entry, bool) {
	if i := r.find(addr); i >= 0 {
		return r.entries[i], true
	}
	return Entry{}, false
}

// ReadAt fills p with memory from address addr on, across pages and
// entries, from this directory or its parents. It fails with ErrNotDumped
// (wrapped) at the first byte no entry holds.
func (r *Reader) ReadAt(p []byte, addr uint64) error {
	for len(p) > 0 {
		i := r.find(addr)
		if i < 0 {
			return fmt.Errorf("%s: address %#x: %w", r.name, addr, ErrNotDumped)
		}
		e := r.entries[i]
		n := min(uint64(len(p)), e.End()-addr)
		if err := r.readEntry(i, p[:n], addr); err != nil {
			return err
		}
		p, addr = p[n:], addr+n
	}
	return nil
}

func (r *Reader) readEntry(i int, p []byte, addr uint64) error {
	e := r.entries[i]
	switch {
	case e.Flags&FlagPresent != 0:
		if r.pages == nil {
			return fmt.Errorf("%s: the pages of %#x are not in this directory (sent to a page server)", r.name, addr)
		}
		off := r.offsets[i] + int64(addr-e.Vaddr)
		if _, err := r.pages.ReadAt(p, off); err != nil {
			return fmt.Errorf("%s: reading %d bytes of %#x at byte %d: %w", r.pages.Name(), len(p), addr, off, err)
		}
		return nil
	case e.Flags&FlagParent != 0:
		pr, err := r.parentReader()
		if err != nil {
			return fmt.Errorf("%s: page %#x is in the parent images: %w", r.name, addr, err)
		}
		// The parent's error already names its files.
		return pr.ReadAt(p, addr)
	case e.Flags&FlagLazy != 0:
		return fmt.Errorf("%s: page %#x is lazy and its data is not in the images: fetch it from the page server", r.name, addr)
	}
	return fmt.Errorf("%s: entry %s has no data location (flags %#x)", r.name, e, e.Flags)
}

func (r *Reader) parentReader() (*Reader, error) {
	if r.parent != nil {
		return r.parent, nil
	}
	pd, err := r.dir.Parent()
	if err != nil {
		return nil, err
	}
	if pd == nil {
		return nil, fmt.Errorf("%s has no %q link", r.dir.Path(), images.ParentLink)
	}
	if r.parent, err = open(pd, r.file, r.seen); err != nil {
		return nil, err
	}
	return r.parent, nil
}

// Writer writes pagemap-PID.img and appends page data to pages-N.img.
// Entries must come in ascending address order; contiguous runs with the
// same flags are merged, as CRIU does.
type Writer struct {
	pm      *images.Writer
	pages   *images.Writer
	pending Entry // not yet written; NrPages 0 when none
	end     uint64
	start   uint64 // offset in pages where the current run's data began
}

// Create starts pagemap-PID.img and pages-ID.img in d.
func Create(d *images.Dir, pid int, pagesID uint32) (*Writer, error) {
	return create(d, images.PagemapFile(pid), pagesID)
}

// CreateShmem starts pagemap-shmem-SHMID.img and pages-ID.img in d: the
// contents of shared memory (a memfd), addressed by offset from 0.
func CreateShmem(d *images.Dir, shmid uint64, pagesID uint32) (*Writer, error) {
	return create(d, images.ShmemPagemapFile(shmid), pagesID)
}

func create(d *images.Dir, name string, pagesID uint32) (*Writer, error) {
	pm, err := d.Create(name, images.KindPagemap)
	if err != nil {
		return nil, err
	}
	if err := pm.WriteEntry(&pb.PagemapHead{PagesId: &pagesID}); err != nil {
		pm.Close()
		return nil, err
	}
	pages, err := d.Create(images.PagesFile(pagesID), images.KindPages)
	if err != nil {
		pm.Close()
		return nil, err
	}
	return &Writer{pm: pm, pages: pages}, nil
}

// Add records a run of pages. data must hold NrPages pages when the run is
// FlagPresent, and be empty otherwise.
func (w *Writer) Add(e Entry, data []byte) error {
	if err := w.check(e); err != nil {
		return err
	}
	if uint64(len(data)) != dataLen(e) {
		return fmt.Errorf("pagemap: run %s comes with %d bytes of data, want %d", e, len(data), dataLen(e))
	}
	if _, err := w.pages.Write(data); err != nil {
		return err
	}
	return w.record(e)
}

// AddFrom records a run of pages whose data (NrPages pages when the run is
// FlagPresent) is read from r, through buf.
func (w *Writer) AddFrom(e Entry, r io.Reader, buf []byte) error {
	if err := w.check(e); err != nil {
		return err
	}
	if n := dataLen(e); n > 0 {
		if _, err := io.CopyBuffer(w.pages, io.LimitReader(r, int64(n)), buf); err != nil {
			return err
		}
		if uint64(w.pages.Offset()) < w.start+n {
			return fmt.Errorf("pagemap: run %s: the data ended after %d bytes: %w", e, uint64(w.pages.Offset())-w.start, io.ErrUnexpectedEOF)
		}
	}
	return w.record(e)
}

func dataLen(e Entry) uint64 {
	if e.Flags&FlagPresent != 0 {
		return e.NrPages * PageSize
	}
	return 0
}

func (w *Writer) check(e Entry) error {
	if e.Vaddr%PageSize != 0 || e.NrPages == 0 || e.NrPages > maxPages || e.End() < e.Vaddr {
		return fmt.Errorf("pagemap: bad run %s", e)
	}
	if e.Vaddr < w.end {
		return fmt.Errorf("pagemap: run %s starts before the end of the previous one (%#x)", e, w.end)
	}
	w.start = uint64(w.pages.Offset())
	return nil
}

func (w *Writer) record(e Entry) error {
	w.end = e.End()
	if w.pending.NrPages > 0 && w.pending.End() == e.Vaddr && w.pending.Flags == e.Flags {
		w.pending.NrPages += e.NrPages
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.pending = e
	return nil
}

func (w *Writer) flush() error {
	if w.pending.NrPages == 0 {
		return nil
	}
	e := w.pending
	w.pending = Entry{}
	return writeEntry(w.pm, e)
}

// writeEntry writes one run as CRIU does: compat_nr_pages left 0, flags
// and nr_pages always set.
func writeEntry(pm *images.Writer, e Entry) error {
	var zero uint32
	return pm.WriteEntry(&pb.PagemapEntry{Vaddr: &e.Vaddr, CompatNrPages: &zero, Flags: &e.Flags, NrPages: &e.NrPages})
}

// Close writes the last entry and closes both files.
func (w *Writer) Close() error {
	err := w.flush()
	if cerr := w.pm.Close(); err == nil {
		err = cerr
	}
	if cerr := w.pages.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteEntries writes pagemap-PID.img naming pages-ID.img, for a dump that
// wrote the page data itself (in entry order, present runs only).
func WriteEntries(d *images.Dir, pid int, pagesID uint32, entries []Entry) error {
	return WriteNamed(d, images.PagemapFile(pid), pagesID, entries)
}

// WriteNamed writes a pagemap image of another name (a shared memory
// object's pagemap-shmem-SHMID.img) naming pages-ID.img.
func WriteNamed(d *images.Dir, name string, pagesID uint32, entries []Entry) error {
	pm, err := d.Create(name, images.KindPagemap)
	if err != nil {
		return err
	}
	defer pm.Close()
	if err := pm.WriteEntry(&pb.PagemapHead{PagesId: &pagesID}); err != nil {
		return err
	}
	for _, e := range entries {
		if err := writeEntry(pm, e); err != nil {
			return err
		}
	}
	return pm.Close()
}

// CheckParents makes sure every run marked as in the parent images is
// held there: each page of it is covered by an entry of the parent's
// pagemap (recursively up the chain). Restore checks this before it creates
// any task, so a broken chain is refused rather than found half-way.
func (r *Reader) CheckParents() error {
	for _, e := range r.entries {
		if e.Flags&FlagParent == 0 {
			continue
		}
		p, err := r.parentReader()
		if err != nil {
			return fmt.Errorf("%s lists pages in the parent images: %w", r.name, err)
		}
		if err := p.covers(e.Vaddr, e.End()); err != nil {
			return fmt.Errorf("%s: pages %#x-%#x are listed as in the parent images, but %w", r.name, e.Vaddr, e.End(), err)
		}
	}
	return nil
}

// covers checks that entries of r (and of its parents, for runs r leaves
// to them) hold every page of [start, end).
func (r *Reader) covers(start, end uint64) error {
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].End() > start })
	for addr := start; addr < end; i++ {
		if i >= len(r.entries) || r.entries[i].Vaddr > addr {
			return fmt.Errorf("%s does not hold page %#x", r.name, addr)
		}
		e := r.entries[i]
		next := min(e.End(), end)
		if e.Flags&FlagParent != 0 {
			p, err := r.parentReader()
			if err != nil {
				return err
			}
			if err := p.covers(addr, next); err != nil {
				return err
			}
		}
		addr = next
	}
	return nil
}
