package lazy

import "sort"

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

// cut removes [start, end) and returns what it held, in order.
func (s *segs) cut(start, end uint64) []seg {
	var out, keep []seg
	for _, g := range *s {
		if g.end <= start || g.start >= end {
			keep = append(keep, g)
			continue
		}
		lo, hi := max(g.start, start), min(g.end, end)
		if g.start < lo {
			keep = append(keep, seg{g.start, lo, g.src})
		}
		out = append(out, seg{lo, hi, g.src + (lo - g.start)})
		if hi < g.end {
			keep = append(keep, seg{hi, g.end, g.src + (hi - g.start)})
		}
	}
	*s = keep
	return out
}

// add puts pieces back (sorted by start, not overlapping what is there).
func (s *segs) add(pieces []seg) {
	*s = append(*s, pieces...)
	sort.Slice(*s, func(i, j int) bool { return (*s)[i].start < (*s)[j].start })
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
