package dump

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
)

// checkSharedFdTables refuses an fd table shared by tasks of the tree
// (clone CLONE_FILES without CLONE_THREAD) other than down from a parent
// to its children: restore gives a child its parent's table by cloning it
// with CLONE_FILES, as CRIU does, and has no way to share one between, say,
// a task and its grandparent once the parent in between left it.
func checkSharedFdTables(c *files.Checker) error {
	var seen []int // live tasks so far, parents before children
	for _, pid := range c.Tasks {
		st, err := proc.ReadStat(pid)
		if err != nil || st.State == 'Z' {
			continue // gone or a zombie: it holds no table
		}
		if !c.InTree(st.PPid) || sameFdTable(pid, st.PPid) {
			seen = append(seen, pid)
			continue
		}
		for _, other := range seen {
			if sameFdTable(pid, other) {
				return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Kind: support.SharedFdTables,
					Object: fmt.Sprintf("its fd table, shared with task %d (%s) but not with its parent task %d (%s)", other, c.Comm(other), st.PPid, c.Comm(st.PPid))}
			}
		}
		seen = append(seen, pid)
	}
	return nil
}

// kcmpFilesType is KCMP_FILES of linux/kcmp.h.
const kcmpFilesType = 2

func sameFdTable(a, b int) bool {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpFilesType, 0, 0, 0)
	return e == 0 && r == 0
}
