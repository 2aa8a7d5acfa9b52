package mem

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/proc"
)

// Run is a run of pages holding data, with the tracker's verdict: Dirty
// when written since the tracker was armed, or when it cannot tell.
type Run struct {
	Range
	Dirty bool
}

// Area is one memory area (VMA) of a task, as trackers see it.
type Area struct {
	Start, End uint64
	// PrivateFile: a private file mapping, whose pages that are still the
	// file's hold nothing of the task's own.
	PrivateFile bool
	// UffdWP: smaps shows the area registered for userfaultfd
	// write-protection ("uw"), by whichever userfaultfd.
	UffdWP bool
}

// ArmArea is an area with what Runs found in it.
type ArmArea struct {
	Area
	Runs []Run
	// Trusted: Runs took the tracker's word for this area.
	Trusted bool
}

// Tracker tells which pages of one task were written since the previous
// iteration armed it. The rule for all: when in doubt, a page is dirty.
type Tracker interface {
	// Name is the backend's name, as gockpt check and the images say it.
	Name() string
	// Runs lists the pages of area a that hold data. trusted says the
	// previous iteration armed exactly this area and nothing since broke
	// the tracking; otherwise every page is dirty. With rearm (a
	// pre-dump) the written state is reset in the same step where the
	// backend can, so nothing written meanwhile is lost.
	Runs(pm *Pagemap, a Area, trusted, rearm bool) ([]Run, error)
	// Arm makes the tracker watch the task from now on, after Runs saw
	// every area; it returns the areas the next iteration may trust.
	Arm(pid int, areas []ArmArea) ([]Area, error)
}

// dataRuns is every page of a holding data, all dirty: the verdict when no
// tracker can be trusted.
func dataRuns(pm *Pagemap, a Area) ([]Run, error) {
	rs, err := pm.Scan(a.Start, a.End, DataPages(a.PrivateFile, zeroPFNOrZero()))
	if err != nil {
		return nil, err
	}
	out := make([]Run, len(rs))
	for i, r := range rs {
		out[i] = Run{Range: r, Dirty: true}
	}
	return out, nil
}

func zeroPFNOrZero() uint64 {
	pfn, err := ZeroPFN()
	if err != nil {
		return 0
	}
	return pfn
}

func appendRun(out []Run, r Run) []Run {
	if n := len(out); n > 0 && out[n-1].End() == r.Start && out[n-1].Dirty == r.Dirty {
		out[n-1].Len += r.Len
		return out
	}
	return append(out, r)
}

// NoTracker knows nothing: every page holding data is dirty. Full dumps
// use it, and the hashes backend, which compares contents afterwards.
type NoTracker struct{ Backend string }

// Name implements Tracker.
func (n NoTracker) Name() string { return n.Backend }

// Runs implements Tracker: all data pages, all dirty.
func (NoTracker) Runs(pm *Pagemap, a Area, _, _ bool) ([]Run, error) { return dataRuns(pm, a) }

// Arm implements Tracker: nothing to arm, nothing to trust.
func (NoTracker) Arm(int, []ArmArea) ([]Area, error) { return nil, nil }

// UffdTracker tracks writes with a userfaultfd in WP_ASYNC mode, made in the
// task's own address space: areas registered for write-protection, their
// pages write-protected; PAGEMAP_SCAN reports the pages written since.
type UffdTracker struct {
	U *Uffd
}

// Name implements Tracker.
func (UffdTracker) Name() string { return "uffd-wp" }

// owns reports whether the area is registered with this tracker:
// registering it again is a no-op for our userfaultfd and fails (EBUSY) if
// the task registered it with one of its own, or (ENOMEM) if our
// userfaultfd watches an address space the task left.
func (t UffdTracker) owns(a Area) bool {
	return t.U != nil && a.UffdWP && t.U.RegisterWP(a.Start, a.End-a.Start) == nil
}

// Runs implements Tracker with PAGEMAP_SCAN, one area at a time (a scan
// across an unregistered area would fail after re-arming what it walked).
// In a trusted area a page is dirty if written since the last arming;
// with rearm the same call write-protects the written pages again
// (PM_SCAN_WP_MATCHING), atomically.
func (t UffdTracker) Runs(pm *Pagemap, a Area, trusted, rearm bool) ([]Run, error) {
	trusted = trusted && t.owns(a)
	args := ScanArgs{
		CategoryAnyofMask: PageIsPresent | PageIsSwapped,
		ReturnMask:        PageIsPresent | PageIsSwapped | PageIsPFNZero | PageIsWritten,
	}
	if a.PrivateFile {
		// Costs a page lookup per page: asked only where it matters.
		args.ReturnMask |= PageIsFile
	}
	if trusted {
		// The scan fails, rather than guess, if the area is not (or no
		// longer) registered in WP_ASYNC mode.
		args.Flags = ScanCheckWPAsync
		if rearm {
			args.Flags |= ScanWPMatching
		}
	}
	regs, err := pm.ScanRegions(a.Start, a.End, args)
	if trusted && errors.Is(err, unix.EPERM) {
		// No longer registered (the tracker was closed): nothing it
		// says counts.
		return t.Runs(pm, a, false, false)
	}
	if err != nil {
		return nil, err
	}
	var out []Run
	for _, r := range regs {
		c := r.Categories
		if c&PageIsPFNZero != 0 {
			// Zeros, which restore gets anyway; and a page dropped with
			// MADV_DONTNEED and read again maps it unwritten.
			continue
		}
		if a.PrivateFile && c&PageIsFile != 0 && c&PageIsSwapped == 0 {
			continue // still the file's page: restore maps the file
		}
		dirty := !trusted || c&PageIsWritten != 0
		if c&PageIsSwapped != 0 && c&PageIsPresent == 0 {
			// Swap entries include uffd-wp markers, which the kernel
			// leaves where a tracked page of a file mapping was zapped:
			// no data there. Tell them apart page by page.
			es, err := pm.Entries(r.Start, r.End)
			if err != nil {
				return nil, err
			}
			for i, e := range es {
				if !IsMarker(e) {
					out = appendRun(out, Run{Range: Range{Start: r.Start + uint64(i)*PageSize, Len: PageSize}, Dirty: dirty})
				}
			}
			continue
		}
		out = appendRun(out, Run{Range: Range{Start: r.Start, Len: r.End - r.Start}, Dirty: dirty})
	}
	return out, nil
}

// Arm implements Tracker: every area not trusted this time is registered
// and the pages holding data write-protected (a page populated later is
// written anyway, and protecting the empty rest would make the kernel
// build page tables full of markers for all of it). It returns the areas
// registered with this tracker now, as smaps shows them: a merge of two
// of ours is ours, an area the task registered itself is not.
func (t UffdTracker) Arm(pid int, areas []ArmArea) ([]Area, error) {
	var ours [][2]uint64
	for _, a := range areas {
		if a.Trusted && a.UffdWP {
			ours = append(ours, [2]uint64{a.Start, a.End}) // re-armed by Runs
			continue
		}
		if err := t.U.RegisterWP(a.Start, a.End-a.Start); err != nil {
			continue // not tracked: dirty every time
		}
		ok := true
		for _, r := range a.Runs {
			if err := t.U.WriteProtect(r.Start, r.Len); err != nil {
				ok = false
				break
			}
		}
		if ok {
			ours = append(ours, [2]uint64{a.Start, a.End})
		}
	}
	now, err := proc.ReadSmaps(pid)
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	var out []Area
	for _, v := range now {
		if v.Flags.Has("uw") && coveredBy(v.Start, v.End, ours) {
			out = append(out, Area{Start: v.Start, End: v.End, UffdWP: true})
		}
	}
	return out, nil
}

// coveredBy reports whether [start, end) lies within the union of rs
// (sorted, non-overlapping).
func coveredBy(start, end uint64, rs [][2]uint64) bool {
	for _, r := range rs {
		if r[1] <= start || r[0] >= end {
			continue
		}
		if r[0] > start {
			return false
		}
		start = r[1]
		if start >= end {
			return true
		}
	}
	return start >= end
}

// SoftDirtyTracker tracks writes with soft-dirty bits (pagemap bit 55,
// reset by writing 4 to clear_refs), where the kernel has them.
type SoftDirtyTracker struct{}

// Name implements Tracker.
func (SoftDirtyTracker) Name() string { return "soft-dirty" }

// Runs implements Tracker from /proc/PID/pagemap entries. Without the zero
// page's PFN (PFNs hidden without CAP_SYS_ADMIN) a zero page mapped after
// MADV_DONTNEED cannot be told from an unwritten page: nothing is trusted.
func (SoftDirtyTracker) Runs(pm *Pagemap, a Area, trusted, _ bool) ([]Run, error) {
	zero := zeroPFNOrZero()
	if !trusted || zero == 0 {
		return dataRuns(pm, a)
	}
	es, err := pm.Entries(a.Start, a.End)
	if err != nil {
		return nil, err
	}
	sel := DataPages(a.PrivateFile, zero)
	var out []Run
	for i, e := range es {
		if sel(e) {
			out = appendRun(out, Run{Range: Range{Start: a.Start + uint64(i)*PageSize, Len: PageSize}, Dirty: IsSoftDirty(e)})
		}
	}
	return out, nil
}

// Arm implements Tracker: clear_refs resets the whole address space, so
// every area is tracked from now on (the kernel marks new areas all soft-
// dirty by itself).
func (SoftDirtyTracker) Arm(pid int, areas []ArmArea) ([]Area, error) {
	if err := ClearSoftDirty(pid); err != nil {
		return nil, err
	}
	out := make([]Area, len(areas))
	for i, a := range areas {
		out[i] = a.Area
	}
	return out, nil
}
