package mem

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

// TestClearSoftDirty clears our own bits. Linux 6.18 without
// CONFIG_MEM_SOFT_DIRTY takes the write and changes nothing, so this only
// logs whether the bits work; kerndat's soft_dirty probe decides that.
func TestClearSoftDirty(t *testing.T) {
	m, base := mapPages(t, 1)
	m[0] = 1
	if err := ClearSoftDirty(os.Getpid()); err != nil {
		t.Fatalf("ClearSoftDirty on ourselves: %v", err)
	}
	pm := openSelf(t)
	before, err := pm.Entries(base, base+PageSize)
	if err != nil {
		t.Fatal(err)
	}
	m[0] = 2
	after, err := pm.Entries(base, base+PageSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("soft-dirty after clear_refs 4: %v; after a write: %v", IsSoftDirty(before[0]), IsSoftDirty(after[0]))
	if IsSoftDirty(before[0]) {
		t.Errorf("soft-dirty bit set right after clear_refs 4")
	}
}

func TestClearSoftDirtyNoTask(t *testing.T) {
	const pid = 1 << 30 // above PID_MAX_LIMIT
	err := ClearSoftDirty(pid)
	want := "clear soft-dirty bits of task 1073741824: open /proc/1073741824/clear_refs: no such file or directory"
	if err == nil || err.Error() != want || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ClearSoftDirty(%d): %v, want %q", pid, err, want)
	}
}
