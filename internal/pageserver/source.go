package pageserver

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// ImagesSource serves the lazy pages of the tasks of an images directory:
// the runs of pagemap-PID.img marked lazy (PE_LAZY) whose data the images
// hold (PE_PRESENT, or PE_PARENT through the parent chain). Pages that are
// not lazy are not served, as CRIU does: restore puts them in place
// itself.
type ImagesSource struct {
	dir   *images.Dir
	tasks map[int]*pagemap.Reader
	pids  []int
	lazy  uint64
}

// OpenImagesSource reads every task's pagemap image in dir.
func OpenImagesSource(dir *images.Dir) (*ImagesSource, error) {
	ents, err := os.ReadDir(dir.Path())
	if err != nil {
		return nil, fmt.Errorf("page server: %w", err)
	}
	s := &ImagesSource{dir: dir, tasks: map[int]*pagemap.Reader{}}
	for _, e := range ents {
		pid, ok := pagemapPid(e.Name())
		if !ok {
			continue
		}
		r, err := pagemap.Open(dir, pid)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("page server: %w", err)
		}
		s.tasks[pid] = r
		s.pids = append(s.pids, pid)
		for _, pe := range r.Entries() {
			if servable(pe) {
				s.lazy += pe.NrPages
			}
		}
	}
	if len(s.pids) == 0 {
		return nil, fmt.Errorf("page server: %s holds no pagemap image: nothing to serve (-D names the images of a dump)", dir.Path())
	}
	sort.Ints(s.pids)
	return s, nil
}

// pagemapPid parses pagemap-PID.img.
func pagemapPid(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "pagemap-")
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, ".img"); !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != s {
		return 0, false
	}
	return pid, true
}

// servable tells whether a run's pages are lazy with their data in the
// images.
func servable(e pagemap.Entry) bool {
	return e.Flags&pagemap.FlagLazy != 0 && e.Flags&(pagemap.FlagPresent|pagemap.FlagParent) != 0
}

// Pids returns the tasks whose pages the source holds, in order.
func (s *ImagesSource) Pids() []int { return s.pids }

// LazyPages counts the lazy pages the source can serve.
func (s *ImagesSource) LazyPages() uint64 { return s.lazy }

// Close closes the images.
func (s *ImagesSource) Close() error {
	var err error
	for _, r := range s.tasks {
		if cerr := r.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// LazyRun implements PageSource: the run may go on through adjacent lazy
// entries.
func (s *ImagesSource) LazyRun(pid int, vaddr, max uint64) (uint64, error) {
	r := s.tasks[pid]
	if r == nil {
		err := fmt.Errorf("%s holds no pagemap image of task %d", s.dir.Path(), pid)
		if id := pid >> typeBits; pid&typeMask == typePid && s.tasks[id] != nil {
			err = fmt.Errorf("%w (%d is how OPEN names task %d: GET takes the PID as it is)", err, pid, id)
		}
		return 0, err
	}
	ents := r.Entries()
	i := sort.Search(len(ents), func(i int) bool { return ents[i].End() > vaddr })
	if i == len(ents) || !ents[i].Contains(vaddr) {
		return 0, fmt.Errorf("no pagemap entry of task %d holds %#x", pid, vaddr)
	}
	if e := ents[i]; !servable(e) {
		why := "is not lazy: restore puts it in place itself"
		if e.Flags&pagemap.FlagLazy != 0 {
			why = "has its data outside the images (a dump with --lazy-pages leaves it in the dumped process)"
		}
		return 0, fmt.Errorf("task %d: page %#x of run %s %s", pid, vaddr, e, why)
	}
	n := (ents[i].End() - vaddr) / pagemap.PageSize
	for i++; n < max && i < len(ents) && ents[i].Vaddr == ents[i-1].End() && servable(ents[i]); i++ {
		n += ents[i].NrPages
	}
	return min(n, max), nil
}

// ReadLazy implements PageSource.
func (s *ImagesSource) ReadLazy(pid int, vaddr uint64, p []byte) error {
	r := s.tasks[pid]
	if r == nil {
		return errors.New("no such task")
	}
	return r.ReadAt(p, vaddr)
}
