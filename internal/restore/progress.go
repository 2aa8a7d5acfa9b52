package restore

import (
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/progress"
)

// pagesToRestore tells s how many pages the restore of plan writes (those
// writePages counts), and returns the Sink restore reports to: Discard
// when nobody watches, without reading any pagemap. A pagemap that does
// not read is left out here; restore fails on it with the reason.
func pagesToRestore(s progress.Sink, plan *Plan) progress.Sink {
	if s == nil {
		return progress.Discard
	}
	var total uint64
	for _, t := range plan.Tasks {
		if t.Zombie {
			continue
		}
		_, entries, err := readPagemap(plan.Dir, t.Pid)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Flags&(pagemap.FlagPresent|pagemap.FlagParent) != 0 && !kernelArea(t, e) {
				total += e.NrPages
			}
		}
	}
	s.AddTotal(total)
	return s
}
