package dump

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/pageserver"
)

// run is a run of pages holding data, and whether it changed since the
// parent images. Pages that are not dirty are recorded as "in the parent".
type run struct {
	mem.Range
	dirty bool
	// vma is the start of the VMA holding the run: runs of different
	// VMAs are never merged, so no pagemap entry crosses an area.
	vma uint64
}

// taskTrack is what an incremental dump knows about one task: the parent
// images of the task (if any) and which of its areas the tracker covers.
type taskTrack struct {
	backend Backend
	// parent is the task's pagemap in the parent images; nil when the
	// parent has none for this task (a new task, a full dump).
	parent *pagemap.Reader
	// prev is the task as the previous pre-dump left it; nil when the
	// tracker cannot be trusted for this task at all.
	prev *trackedTask
	// rearm: this is a pre-dump; the written state is reset while scanning
	// so the next iteration sees only what is written from now on.
	rearm bool
	// parentHashes are the parent's page hashes (hashes backend).
	parentHashes *pageHashes
	// tracker is the task's dirty tracker; NoTracker when there is none
	// to ask (a full dump, the hashes backend, a task not tracked).
	tracker mem.Tracker
}

// trusted reports whether the kernel tracker's word on area [start, end)
// may be taken: the area is exactly one the previous pre-dump armed.
// New, moved or resized areas are all dirty.
func (tt *taskTrack) trusted(start, end uint64) bool {
	return tt != nil && tt.prev != nil && tt.prev.covers(start, end)
}

// pageRuns lists the pages of each dumpable VMA that hold data, with the
// tracker's verdict on each (mem.Tracker; pages mapping the zero page are
// left out), then makes dirty whatever the parent does not hold.
func pageRuns(pid int, plans []vmaPlan, tt *taskTrack) ([]run, uint64, error) {
	pm, err := mem.OpenPagemap(pid)
	if err != nil {
		return nil, 0, err
	}
	defer pm.Close()
	var tracker mem.Tracker = mem.NoTracker{}
	rearm := false
	if tt != nil && tt.tracker != nil && tt.parent != nil {
		tracker, rearm = tt.tracker, tt.rearm
	}
	var out []run
	var scanned uint64
	for _, p := range plans {
		if p.vdso || p.aio != nil {
			// Always whole and dirty: no tracker watches it.
			a := p.area()
			scanned += (a.End - a.Start) / mem.PageSize
			out = append(out, run{Range: mem.Range{Start: a.Start, Len: a.End - a.Start}, dirty: true, vma: a.Start})
			continue
		}
		if !p.dumpPages {
			continue
		}
		a := p.area()
		scanned += (a.End - a.Start) / mem.PageSize
		vmaBegin := time.Now()
		rs, err := tracker.Runs(pm, a, tt.trusted(a.Start, a.End), rearm)
		if err != nil {
			return nil, 0, fmt.Errorf("task %d VMA %#x-%#x: %w", pid, a.Start, a.End, err)
		}
		if el := time.Since(vmaBegin); el > time.Millisecond {
			log.Debugf("task %d VMA %#x-%#x: %d runs in %v", pid, a.Start, a.End, len(rs), el)
		}
		for _, r := range rs {
			out = append(out, run{Range: r.Range, dirty: r.Dirty, vma: a.Start})
		}
	}
	if tt != nil && tt.parent != nil {
		b := time.Now()
		out = parentMustHold(out, tt.parent)
		log.Debugf("task %d: parent coverage checked in %v", pid, time.Since(b))
	}
	return out, scanned, nil
}

func appendRun(out []run, r run) []run {
	if n := len(out); n > 0 && out[n-1].End() == r.Start && out[n-1].dirty == r.dirty && out[n-1].vma == r.vma {
		out[n-1].Len += r.Len
		return out
	}
	return append(out, r)
}

// parentMustHold makes dirty every clean page the parent images do not
// hold: a page that appeared without a write (a file page copied on a
// read fault, a page the previous round did not see) cannot come from the
// parent. When in doubt, a page is dirty.
func parentMustHold(in []run, parent *pagemap.Reader) []run {
	var out []run
	for _, r := range in {
		if r.dirty {
			out = appendRun(out, r)
			continue
		}
		for addr := r.Start; addr < r.End(); {
			e, ok := parent.Find(addr)
			next := r.End()
			held := ok && e.Flags&(pagemap.FlagPresent|pagemap.FlagParent) != 0
			if ok {
				next = min(next, e.End())
			} else if i := nextEntry(parent, addr); i >= 0 {
				next = min(next, parent.Entries()[i].Vaddr)
			}
			out = appendRun(out, run{Range: mem.Range{Start: addr, Len: next - addr}, dirty: !held, vma: r.vma})
			addr = next
		}
	}
	return out
}

// nextEntry is the index of the first entry starting after addr, or -1.
func nextEntry(r *pagemap.Reader, addr uint64) int {
	es := r.Entries()
	lo, hi := 0, len(es)
	for lo < hi {
		m := (lo + hi) / 2
		if es[m].Vaddr <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(es) {
		return lo
	}
	return -1
}

// openParentPagemaps opens every task's pagemap in the parent images: the
// image itself, or, when the pages went to a page server, the record of
// what was sent there.
func openParentPagemaps(parent *images.Dir) (map[int]*pagemap.Reader, error) {
	ents, err := os.ReadDir(parent.Path())
	if err != nil {
		return nil, fmt.Errorf("parent images: %w", err)
	}
	out := map[int]*pagemap.Reader{}
	for _, e := range ents {
		var pid int
		var r *pagemap.Reader
		var err error
		if n, _ := fmt.Sscanf(e.Name(), "pagemap-%d.img", &pid); n == 1 && images.PagemapFile(pid) == e.Name() {
			if old := out[pid]; old != nil {
				old.Close()
			}
			r, err = pagemap.Open(parent, pid)
		} else if n, _ := fmt.Sscanf(e.Name(), "gockpt-sent-pagemap-%d.img", &pid); n == 1 && images.SentPagemapFile(pid) == e.Name() {
			if out[pid] != nil || parent.Exists(images.PagemapFile(pid)) {
				continue
			}
			r, err = pagemap.OpenMap(parent, e.Name())
		} else {
			continue
		}
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("parent images: %w", err)
		}
		out[pid] = r
	}
	return out, nil
}

// pagemapOut collects a task's pagemap entries while its pages are written.
type pagemapOut struct {
	// stream, when the pages go to a page server, hears each run.
	stream *pageserver.Stream
	// lazy marks the pages that may be restored lazily; nil: none.
	lazy *lazyMap
	// lazyOut, in a --lazy-pages dump, takes the lazy pages: listed, not
	// written.
	lazyOut func(mem.Range)
	entries []pagemap.Entry
	lastVMA uint64
	written uint64 // pages with data in this directory
	parent  uint64 // pages left in the parent images
}

// add records a run and returns the parts whose data must be written.
func (o *pagemapOut) add(r mem.Range, vma uint64, inParent bool) []mem.Range {
	if inParent {
		o.addFlags(r, vma, pagemap.FlagParent)
		return nil
	}
	var data []mem.Range
	o.lazy.split(r, vma, func(r mem.Range, lazy bool) {
		flags := pagemap.FlagPresent
		switch {
		case lazy && o.lazyOut != nil:
			flags = pagemap.FlagLazy
			o.lazyOut(r)
		case lazy:
			flags |= pagemap.FlagLazy
		}
		if flags&pagemap.FlagPresent != 0 {
			data = append(data, r)
		}
		o.addFlags(r, vma, flags)
	})
	return data
}

func (o *pagemapOut) addFlags(r mem.Range, vma uint64, flags uint32) {
	switch {
	case flags&pagemap.FlagParent != 0:
		o.parent += r.Pages()
	case flags&pagemap.FlagPresent != 0:
		o.written += r.Pages()
	}
	if o.stream != nil {
		// Errors stay in the session: the data written next fails.
		o.stream.Add(pagemap.Entry{Vaddr: r.Start, NrPages: r.Pages(), Flags: flags})
	}
	if n := len(o.entries); n > 0 && o.entries[n-1].End() == r.Start && o.entries[n-1].Flags == flags && o.lastVMA == vma {
		o.entries[n-1].NrPages += r.Pages()
		return
	}
	o.lastVMA = vma
	o.entries = append(o.entries, pagemap.Entry{Vaddr: r.Start, NrPages: r.Pages(), Flags: flags})
}

// write writes pagemap-PID.img naming pages-ID.img.
func (o *pagemapOut) write(dir *images.Dir, pid int, pagesID uint32) error {
	return pagemap.WriteEntries(dir, pid, pagesID, o.entries)
}

// errVanished is what a tolerant read reports for pages it could not read
// because the area went away after the tree was let go.
var errVanished = errors.New("area vanished")

// hashRuns compares the data of runs with the parent's hashes, page by
// page, writes the pages that differ to f and records every page in out
// (and its hash in hs, when not nil). Reading happens with the task frozen
// (final dump) or running (pre-dump, tolerant). Consecutive dirty runs are
// read in one go, and each chunk's pages are hashed on every CPU.
func hashRuns(vm *vmReader, runs []run, ph *pageHashes, out *pagemapOut, hs *hashWriter, f io.Writer, tolerant bool) error {
	w := bufio.NewWriterSize(f, 1<<20)
	var sums []pageSum
	for len(runs) > 0 {
		if r := runs[0]; !r.dirty {
			// The kernel tracker found it clean: no need to read it.
			out.add(r.Range, r.vma, true)
			if hs != nil {
				if err := hs.fromParent(r.Range, ph); err != nil {
					return err
				}
			}
			runs = runs[1:]
			continue
		}
		n := 1
		for n < len(runs) && runs[n].dirty {
			n++
		}
		batch := runs[:n]
		runs = runs[n:]
		ranges := make([]mem.Range, n)
		for i, r := range batch {
			ranges[i] = r.Range
		}
		err := vm.each(ranges, tolerant, func(addr uint64, data []byte) error {
			sums = hashPages(data, sums[:0])
			for i, sum := range sums {
				a := addr + uint64(i)*mem.PageSize
				for a >= batch[0].End() {
					batch = batch[1:]
				}
				same := ph != nil && ph.equal(a, sum)
				out.add(mem.Range{Start: a, Len: mem.PageSize}, batch[0].vma, same)
				if !same {
					if _, err := w.Write(data[i*mem.PageSize : (i+1)*mem.PageSize]); err != nil {
						return fmt.Errorf("write pages: %w", err)
					}
				}
				if hs != nil {
					hs.add(sum)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write pages: %w", err)
	}
	return nil
}

// hashPages hashes each page of data into sums, spreading the pages over
// the CPUs: SHA-256 is the cost of the hashes backend.
func hashPages(data []byte, sums []pageSum) []pageSum {
	n := len(data) / mem.PageSize
	sums = append(sums[:0], make([]pageSum, n)...)
	workers := min(runtime.GOMAXPROCS(0), n/16+1)
	var wg sync.WaitGroup
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				sums[i] = pageHash(data[i*mem.PageSize : (i+1)*mem.PageSize])
			}
		}()
	}
	wg.Wait()
	return sums
}

// logRuns says how much the tracker saved for a task.
func logRuns(pid int, o *pagemapOut) {
	log.Debugf("task %d: %d pages written, %d left in the parent images", pid, o.written, o.parent)
}
