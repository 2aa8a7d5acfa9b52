package dump

import (
	"fmt"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/kcmp"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
)

// checkSharedFdTables refuses an fd table shared by tasks of the tree
// (clone CLONE_FILES without CLONE_THREAD) other than down from a parent
// to its children: restore gives a child its parent's table by cloning it
// with CLONE_FILES, as CRIU does, and has no way to share one between, say,
// a task and its grandparent once the parent in between left it.
func checkSharedFdTables(c *files.Checker) error {
	// The tables of the live tasks so far (parents before children), by
	// the first task seen holding each.
	seen := &kcmp.Set[int]{Type: kcmp.Files}
	for _, pid := range c.Tasks {
		st, err := proc.ReadStat(pid)
		if err != nil || st.State == 'Z' {
			continue // gone or a zombie: it holds no table
		}
		other, ok := seen.Find(pid, 0)
		if ok && c.InTree(st.PPid) && kcmp.Compare(kcmp.Files, pid, st.PPid, 0, 0) != 0 {
			return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Kind: support.SharedFdTables,
				Object: fmt.Sprintf("its fd table, shared with task %d (%s) but not with its parent task %d (%s)", other, c.Comm(other), st.PPid, c.Comm(st.PPid))}
		}
		if !ok {
			seen.Add(pid, 0, pid)
		}
	}
	return nil
}
