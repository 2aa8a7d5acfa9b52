package mem

import (
	"fmt"
	"os"
)

// IsSoftDirty reports the soft-dirty bit of a pagemap entry. Kernels built
// without CONFIG_MEM_SOFT_DIRTY always report 0.
func IsSoftDirty(e uint64) bool { return e&pmSoftDirty != 0 }

// ClearSoftDirty clears the soft-dirty bits of every page of task pid, so the
// next dump saves only pages written after it. Without CONFIG_MEM_SOFT_DIRTY
// the kernel still accepts the write and does nothing useful: whether the
// tracker works is for kerndat's soft_dirty probe to say.
func ClearSoftDirty(pid int) error {
	name := fmt.Sprintf("/proc/%d/clear_refs", pid)
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("clear soft-dirty bits of task %d: %w", pid, err)
	}
	_, werr := f.Write([]byte("4"))
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("clear soft-dirty bits of task %d: %w", pid, werr)
	}
	if cerr != nil {
		return fmt.Errorf("clear soft-dirty bits of task %d: %w", pid, cerr)
	}
	return nil
}
