package dump

import (
	"sort"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/mem"
	pb "github.com/gockpt/gockpt/proto"
)

// lazyMap says which dumped pages may be restored lazily (post-copy), as
// CRIU marks them PE_LAZY: private anonymous memory, not locked, not huge
// pages, not the vDSO or vvar, and not the page each thread's stack
// pointer is in (what a thread touches first when it runs again).
type lazyMap struct {
	vmas map[uint64]bool // VMA starts of the areas that may be lazy
	sps  []uint64        // sorted stack pages of the threads
}

func newLazyMap(plans []vmaPlan, cores []*pb.CoreEntry) *lazyMap {
	l := &lazyMap{vmas: map[uint64]bool{}}
	for _, p := range plans {
		if lazyArea(p.entry) && p.dumpPages && !p.vdso && p.aio == nil {
			l.vmas[p.entry.GetStart()] = true
		}
	}
	for _, c := range cores {
		if sp := c.GetThreadInfo().GetGpregs().GetSp(); sp != 0 {
			l.sps = append(l.sps, sp&^(mem.PageSize-1))
		}
	}
	sort.Slice(l.sps, func(i, j int) bool { return l.sps[i] < l.sps[j] })
	return l
}

// lazyArea is CRIU's vma_entry_can_be_lazy.
func lazyArea(v *pb.VmaEntry) bool {
	f, st := v.GetFlags(), v.GetStatus()
	return f&unix.MAP_ANONYMOUS != 0 && f&unix.MAP_PRIVATE != 0 && f&unix.MAP_LOCKED == 0 && f&unix.MAP_HUGETLB == 0 &&
		st&(images.VMAAreaVDSO|images.VMAAreaVVAR|images.VMAAreaVsyscall) == 0
}

// split cuts r, of the VMA starting at vma, into pieces that may be lazy
// or not, in order.
func (l *lazyMap) split(r mem.Range, vma uint64, fn func(mem.Range, bool)) {
	if l == nil || !l.vmas[vma] {
		fn(r, false)
		return
	}
	start := r.Start
	i := sort.Search(len(l.sps), func(i int) bool { return l.sps[i] >= r.Start })
	for ; i < len(l.sps) && l.sps[i] < r.End(); i++ {
		sp := l.sps[i]
		if i > 0 && l.sps[i-1] == sp {
			continue // two threads on one page
		}
		if sp > start {
			fn(mem.Range{Start: start, Len: sp - start}, true)
		}
		fn(mem.Range{Start: sp, Len: mem.PageSize}, false)
		start = sp + mem.PageSize
	}
	if start < r.End() {
		fn(mem.Range{Start: start, Len: r.End() - start}, true)
	}
}
