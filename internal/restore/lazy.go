package restore

import (
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/lazy"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
	pb "github.com/gockpt/gockpt/proto"
)

// Post-copy (--lazy-pages): the pages the dump marked lazy (PE_LAZY) in
// private anonymous areas are not written; each such area is registered
// for missing faults with a userfaultfd made inside the task, which the
// lazy-pages daemon gets before anything can touch that memory.

// lazyState is what restore knows of the lazy memory.
type lazyState struct {
	daemon *lazy.Client
	// mu guards areas: page writers read them beside the tracer.
	mu sync.Mutex
	// areas are, per task, the areas whose lazy pages the daemon puts in
	// place (registered whole), and runs those pages.
	areas map[int][]lazy.Run
	runs  map[int][]lazy.Run
}

// lazyAreas finds the task's areas holding lazy pages. Such an area is
// made anew, never inherited (a page its parent wrote would stand where
// the daemon must put the task's own). A lazy run outside any area that
// can be lazy is restored eagerly when its data is here, and refused when
// it is not.
func (rs *restorer) lazyAreas(t *Task, entries []pagemap.Entry, kept map[cowKey]bool) error {
	if rs.lazy.daemon == nil {
		return nil
	}
	var areas, runs []lazy.Run
	for _, v := range t.MM.GetVmas() {
		if !lazyArea(v) {
			continue
		}
		i := sort.Search(len(entries), func(i int) bool { return entries[i].End() > v.GetStart() })
		var in []lazy.Run
		for ; i < len(entries) && entries[i].Vaddr < v.GetEnd(); i++ {
			e := entries[i]
			if e.Flags&pagemap.FlagLazy == 0 {
				continue
			}
			lo, hi := max(e.Vaddr, v.GetStart()), min(e.End(), v.GetEnd())
			if n := len(in); n > 0 && in[n-1].End() == lo {
				in[n-1].Len += hi - lo
			} else {
				in = append(in, lazy.Run{Start: lo, Len: hi - lo})
			}
		}
		if len(in) == 0 {
			continue
		}
		delete(kept, cowKey{v.GetStart(), v.GetEnd()})
		areas = append(areas, lazy.Run{Start: v.GetStart(), Len: v.GetEnd() - v.GetStart()})
		runs = append(runs, in...)
	}
	for _, e := range entries {
		if e.Flags&pagemap.FlagLazy != 0 && e.Flags&(pagemap.FlagPresent|pagemap.FlagParent) == 0 && !covered(areas, e.Vaddr, e.End()) {
			return fmt.Errorf("task %d: pages %#x-%#x are lazy (their data is with the page server or the source images) but their area cannot be restored lazily: restore from the full images", t.Pid, e.Vaddr, e.End())
		}
	}
	if len(areas) > 0 {
		rs.lazy.mu.Lock()
		rs.lazy.areas[t.Pid], rs.lazy.runs[t.Pid] = areas, runs
		rs.lazy.mu.Unlock()
	}
	return nil
}

// lazyArea is CRIU's vma_entry_can_be_lazy.
func lazyArea(v *pb.VmaEntry) bool {
	f, st := v.GetFlags(), v.GetStatus()
	return st&images.VMAAreaRegular != 0 && st&images.VMAAnonPrivate != 0 &&
		f&unix.MAP_ANONYMOUS != 0 && f&unix.MAP_PRIVATE != 0 && f&unix.MAP_LOCKED == 0 && f&unix.MAP_HUGETLB == 0 &&
		st&(images.VMAAreaVDSO|images.VMAAreaVVAR|images.VMAAreaVsyscall|images.VMAAreaAIORing) == 0
}

func covered(areas []lazy.Run, start, end uint64) bool {
	for _, a := range areas {
		if start >= a.Start && end <= a.End() {
			return true
		}
	}
	return false
}

// lazyAreasOf are task pid's lazy areas.
func (rs *restorer) lazyAreasOf(pid int) []lazy.Run {
	rs.lazy.mu.Lock()
	defer rs.lazy.mu.Unlock()
	return rs.lazy.areas[pid]
}

// lazyPart tells whether entry e, of a task with lazy areas, is left to
// the daemon.
func lazyPart(areas []lazy.Run, e pagemap.Entry) bool {
	return e.Flags&pagemap.FlagLazy != 0 && e.Flags&pagemap.FlagParent == 0 && covered(areas, e.Vaddr, e.End())
}

// handOver makes the task's userfaultfd, registers its lazy areas and
// gives it to the daemon: from here on the daemon answers its faults.
func (rs *restorer) handOver(l *live) error {
	areas := rs.lazyAreasOf(l.t.Pid)
	if len(areas) == 0 {
		return nil
	}
	r := l.main
	tfd, err := r.call("userfaultfd", unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK)
	if err != nil {
		return fmt.Errorf("task %d: %w (post-copy needs userfaultfd in the task: check vm.unprivileged_userfaultfd and seccomp)", l.t.Pid, err)
	}
	pidfd, err := unix.PidfdOpen(l.t.Pid, 0)
	if err != nil {
		return fmt.Errorf("task %d: pidfd_open: %w", l.t.Pid, err)
	}
	fd, err := unix.PidfdGetfd(pidfd, int(tfd), 0)
	unix.Close(pidfd)
	if _, cerr := r.call("close userfaultfd", unix.SYS_CLOSE, tfd); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("task %d: taking its userfaultfd: %w", l.t.Pid, err)
	}
	u := mem.UffdFromFd(fd)
	defer u.Close() // the daemon holds its own copy
	const events = mem.UffdFeatureEventFork | mem.UffdFeatureEventRemap | mem.UffdFeatureEventRemove | mem.UffdFeatureEventUnmap | mem.UffdFeatureThreadID
	if _, err := u.Handshake(events); err != nil {
		return fmt.Errorf("task %d: %w", l.t.Pid, err)
	}
	for _, a := range areas {
		if err := u.RegisterMissing(a.Start, a.Len); err != nil {
			return fmt.Errorf("task %d: %w", l.t.Pid, err)
		}
	}
	if err := rs.lazy.daemon.Send(l.t.Pid, u.Fd(), rs.lazy.runs[l.t.Pid]); err != nil {
		return err
	}
	var pages uint64
	for _, r := range rs.lazy.runs[l.t.Pid] {
		pages += r.Len / mem.PageSize
	}
	log.Infof("task %d: %d lazy pages in %d areas handed to the lazy-pages daemon", l.t.Pid, pages, len(areas))
	return nil
}

// handOverAll gives every task's userfaultfd to the daemon, then tells it
// that was all.
func (rs *restorer) handOverAll() error {
	if rs.lazy.daemon == nil {
		return nil
	}
	for _, l := range rs.tasks {
		if l.t.Zombie {
			continue
		}
		if err := rs.handOver(l); err != nil {
			return err
		}
	}
	return rs.lazy.daemon.Done()
}

// needsDaemon refuses, without --lazy-pages, images whose lazy pages are
// not in them (dump --lazy-pages, image make-lazy): the tree would come
// back with that memory zero.
func needsDaemon(plan *Plan) error {
	for _, t := range plan.Tasks {
		if t.Zombie {
			continue
		}
		_, entries, err := readPagemap(plan.Dir, t.Pid)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Flags&(pagemap.FlagPresent|pagemap.FlagParent) == 0 {
				return fmt.Errorf("task %d: pages %#x-%#x are lazy and their data is not in %s (made by dump --lazy-pages or image make-lazy): restore with --lazy-pages, with gockpt lazy-pages serving the full images or the page server", t.Pid, e.Vaddr, e.End(), plan.Dir.Path())
			}
		}
	}
	return nil
}
