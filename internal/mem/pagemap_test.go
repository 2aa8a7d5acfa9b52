package mem

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestScanFindsTouchedPages maps 8 pages, touches pages 1, 2 and 5, and
// expects exactly those, merged into runs.
func TestScanFindsTouchedPages(t *testing.T) {
	m, err := unix.Mmap(-1, 0, 8*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	for _, pg := range []int{1, 2, 5} {
		m[pg*PageSize] = 1
	}
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	base := uint64(uintptrOf(m))
	got, err := pm.Scan(base, base+8*PageSize, AnonPages(false))
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{base + PageSize, 2 * PageSize}, {base + 5*PageSize, PageSize}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ranges %v, want %v", got, want)
	}
}
