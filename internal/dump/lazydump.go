package dump

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/pageserver"
)

// dump --lazy-pages (post-copy): the lazy pages are listed (PE_LAZY) but
// not written; once every image is written the tree stays frozen and the
// dump serves those pages from its memory to the destination's lazy-pages
// daemon, as a page server does. When the daemon has them all (it closes
// the session) the tree is killed, before the daemon hears so: the tree
// never runs in two places. If the session fails first, the destination's
// daemon kills the restored tree and this one is let go, running as it
// was.

// lazyServe is the lazy part of a dump.
type lazyServe struct {
	ln net.Listener
	// runs are each task's lazy pages, sorted.
	runs map[int][]mem.Range
	// killed: the tree was killed when the daemon had every page.
	killed    bool
	finishErr error
	d         *dumper
}

// listenLazy opens the port the destination's daemon will connect to,
// before the tree is touched.
func (d *dumper) listenLazy() error {
	if !d.opts.LazyPages {
		return nil
	}
	ln, err := net.Listen("tcp", d.opts.LazyListen)
	if err != nil {
		return fmt.Errorf("dump --lazy-pages: %w: choose another --port", err)
	}
	d.lazy = &lazyServe{ln: ln, runs: map[int][]mem.Range{}, d: d}
	return nil
}

// LazyAddr is where a --lazy-pages dump serves its pages ("" otherwise).
func (d *dumper) lazyAddr() string {
	if d.lazy == nil {
		return ""
	}
	return d.lazy.ln.Addr().String()
}

// noteLazy records pages of pid left for the destination to fetch.
func (l *lazyServe) noteLazy(pid int, r mem.Range) {
	if l == nil {
		return
	}
	rs := l.runs[pid]
	if n := len(rs); n > 0 && rs[n-1].End() == r.Start {
		rs[n-1].Len += r.Len
	} else {
		rs = append(rs, r)
	}
	l.runs[pid] = rs
}

func (l *lazyServe) close() {
	if l != nil && l.ln != nil {
		l.ln.Close()
	}
}

// serve serves the lazy pages until the destination has them all.
func (l *lazyServe) serve() (pageserver.Served, error) {
	var pages uint64
	for _, rs := range l.runs {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
		for _, r := range rs {
			pages += r.Pages()
		}
	}
	log.Infof("serving %d lazy pages of %d tasks on %s until the destination has them all", pages, len(l.runs), l.ln.Addr())
	got, peer, err := pageserver.ServeLazyOne(l.ln, l, l.d.opts.LazyTLS)
	l.ln.Close()
	if err != nil {
		return got, err
	}
	log.Infof("served %d pages in %d requests to %s in %v", got.Pages, got.Requests, peer, got.Took.Round(time.Millisecond))
	return got, nil
}

// LazyRun is pageserver.PageSource's.
func (l *lazyServe) LazyRun(pid int, vaddr, max uint64) (uint64, error) {
	rs := l.runs[pid]
	i := sort.Search(len(rs), func(i int) bool { return rs[i].End() > vaddr })
	if i == len(rs) || rs[i].Start > vaddr {
		return 0, fmt.Errorf("task %d has no lazy page at %#x", pid, vaddr)
	}
	return min(max, (rs[i].End()-vaddr)/mem.PageSize), nil
}

// ReadLazy reads the frozen task's memory.
func (l *lazyServe) ReadLazy(pid int, vaddr uint64, p []byte) error {
	local := []unix.Iovec{{Base: &p[0]}}
	local[0].SetLen(len(p))
	remote := []unix.RemoteIovec{{Base: uintptr(vaddr), Len: len(p)}}
	n, err := unix.ProcessVMReadv(pid, local, remote, 0)
	if err == nil && n == len(p) {
		return nil
	}
	// What the task may not read itself (PROT_NONE) the tracer reads.
	f, ferr := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if ferr != nil {
		return fmt.Errorf("task %d: reading %#x: %v; %w", pid, vaddr, err, ferr)
	}
	defer f.Close()
	if _, err := f.ReadAt(p, int64(vaddr)); err != nil {
		return fmt.Errorf("task %d: reading %#x: %w", pid, vaddr, err)
	}
	return nil
}

// Delivered is called when the daemon has every page: the tree dies now,
// before the daemon hears it may let its tree go on alone.
func (l *lazyServe) Delivered() error {
	if l.killed {
		return nil
	}
	l.killed = true
	l.finishErr = l.d.finish()
	return nil
}

// errLazyAborted wraps a lazy session that did not complete.
var errLazyAborted = errors.New("the destination does not have every page")
