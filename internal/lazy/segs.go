package lazy

import (
	"slices"
	"sort"
)

// seg is a run of pages not in place yet: [start, end) in the task now,
// whose data is at src in the images (the address the dump saw: mremap
// moves a run, not its data).
type seg struct {
	start, end, src uint64
}

// segs is a task's pages not in place, sorted, never overlapping.
type segs []seg

func (s segs) pages() uint64 {
	var n uint64
	for _, g := range s {
		n += (g.end - g.start) / pageSize
	}
	return n
}

// find is the index of the seg holding addr, or -1.
func (s segs) find(addr uint64) int {
	i := sort.Search(len(s), func(i int) bool { return s[i].end > addr })
	if i < len(s) && s[i].start <= addr {
		return i
	}
	return -1
}

// cut removes [start, end) and returns what it held, in order. Only the
// segs it touches are looked at: faults at random places split the list
// into many pieces, and each fault must stay cheap.
func (s *segs) cut(start, end uint64) []seg {
	l := *s
	i := sort.Search(len(l), func(i int) bool { return l[i].end > start })
	j := sort.Search(len(l), func(i int) bool { return l[i].start >= end })
	if i >= j {
		return nil
	}
	out := make([]seg, 0, j-i)
	var keep []seg
	for _, g := range l[i:j] {
		lo, hi := max(g.start, start), min(g.end, end)
		if g.start < lo {
			keep = append(keep, seg{g.start, lo, g.src})
		}
		out = append(out, seg{lo, hi, g.src + (lo - g.start)})
		if hi < g.end {
			keep = append(keep, seg{hi, g.end, g.src + (hi - g.start)})
		}
	}
	*s = slices.Replace(l, i, j, keep...)
	return out
}

// add puts pieces back (not overlapping what is there).
func (s *segs) add(pieces []seg) {
	for _, p := range pieces {
		i := sort.Search(len(*s), func(i int) bool { return (*s)[i].start >= p.start })
		*s = slices.Insert(*s, i, p)
	}
}

// move is mremap: what was at [from, from+n) is at [to, to+n) now.
func (s *segs) move(from, to, n uint64) {
	moved := s.cut(from, from+n)
	// Whatever was at the destination is gone (mremap unmapped it).
	s.cut(to, to+n)
	for i := range moved {
		moved[i].start = moved[i].start - from + to
		moved[i].end = moved[i].end - from + to
	}
	s.add(moved)
}
