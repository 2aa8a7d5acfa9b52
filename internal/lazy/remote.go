package lazy

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/pageserver"
)

// RemoteSource fetches lazy pages from a page server (gockpt page-server
// --lazy-pages, dump --lazy-pages, or CRIU's).
type RemoteSource struct {
	c *pageserver.Client
}

// NewRemoteSource fetches pages through c.
func NewRemoteSource(c *pageserver.Client) *RemoteSource { return &RemoteSource{c: c} }

func (s *RemoteSource) ReadPages(pid int, addr uint64, buf []byte) error {
	for len(buf) > 0 {
		got, err := s.c.Get(pid, addr, uint64(len(buf))/mem.PageSize, buf)
		if err != nil {
			return err
		}
		buf = buf[got*mem.PageSize:]
		addr += got * mem.PageSize
	}
	return nil
}

// Close ends the session: the server learns every page arrived.
func (s *RemoteSource) Close() error { return s.c.Close() }

// Abort drops the session: the server learns the pages did not all
// arrive.
func (s *RemoteSource) Abort() { s.c.Abort() }

// KillTree kills every task the daemon serves, and their descendants (a
// child forked since restore shares its parent's missing pages): a tree
// whose memory cannot be completed must not run on with pages missing,
// nor wait for them for ever. It returns the PIDs killed.
func (d *Daemon) KillTree() []int {
	roots := map[int]bool{}
	for _, t := range d.tasks {
		if t.pid > 0 {
			roots[t.pid] = true
		}
	}
	for _, p := range d.restored {
		roots[p] = true
	}
	return killDescendants(roots)
}

// killDescendants SIGKILLs the processes of roots and every descendant.
func killDescendants(roots map[int]bool) []int {
	parent := map[int]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	in := func(pid int) bool {
		for p := pid; p > 1; p = parent[p] {
			if roots[p] {
				return true
			}
			if _, ok := parent[p]; !ok {
				return false
			}
		}
		return false
	}
	var killed []int
	for pid := range parent {
		if in(pid) {
			// Stopped first, so that none forks or dies for its parent to
			// see while the others are killed.
			unix.Kill(pid, unix.SIGSTOP)
			killed = append(killed, pid)
		}
	}
	for _, pid := range killed {
		unix.Kill(pid, unix.SIGKILL)
	}
	return killed
}

// String names the remote source.
func (s *RemoteSource) String() string { return fmt.Sprintf("page server %s", s.c.Peer()) }
