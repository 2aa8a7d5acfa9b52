package dump

import (
	"io"

	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/progress"
)

// Progress counts, per task, the pages of its dirty runs: AddTotal once
// they are known, Add as they are copied (or, by content comparison,
// found unchanged). Both sums match when the task is done.

// dirtyPages counts the pages of runs that are read.
func dirtyPages(runs []run) uint64 {
	var n uint64
	for _, r := range runs {
		if r.dirty {
			n += r.Len / mem.PageSize
		}
	}
	return n
}

// progressBatch is the most memory one parasite request moves while
// somebody watches progress, so that the bar moves within a large task:
// a few requests a second at dump speed, each costing one round trip.
const progressBatch = 64 << 20

// progressBatches splits ranges into requests of at most progressBatch
// bytes when progress is watched, and keeps them whole otherwise.
func (d *dumper) progressBatches(ranges []parasite.Range) [][]parasite.Range {
	if d.opts.Progress == progress.Discard {
		return [][]parasite.Range{ranges}
	}
	var out [][]parasite.Range
	var cur []parasite.Range
	var size uint64
	for _, r := range ranges {
		for r.Len > 0 {
			n := min(r.Len, progressBatch-size)
			cur = append(cur, parasite.Range{Addr: r.Addr, Len: n})
			size += n
			r.Addr += n
			r.Len -= n
			if size == progressBatch {
				out = append(out, cur)
				cur, size = nil, 0
			}
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// parasitePages counts the pages of ranges.
func parasitePages(ranges []parasite.Range) uint64 {
	var n uint64
	for _, r := range ranges {
		n += r.Len / mem.PageSize
	}
	return n
}

// counted returns w reporting the pages written through it, or w itself
// when nobody watches progress.
func (d *dumper) counted(w io.Writer) io.Writer {
	if d.opts.Progress == progress.Discard {
		return w
	}
	return pageCounter{w: w, s: d.opts.Progress}
}

// pageCounter reports the whole pages written through it: the readers
// write whole pages.
type pageCounter struct {
	w io.Writer
	s progress.Sink
}

func (c pageCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.s.Add(uint64(n) / mem.PageSize)
	return n, err
}
