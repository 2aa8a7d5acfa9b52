package mem

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestZeroPFN(t *testing.T) {
	z, err := ZeroPFN()
	if os.Geteuid() != 0 {
		if err == nil || !strings.Contains(err.Error(), "hides PFNs") {
			t.Fatalf("ZeroPFN without root: %#x, %v; want an error saying PFNs are hidden", z, err)
		}
		t.Skip(err)
	}
	if err != nil || z == 0 {
		t.Fatalf("ZeroPFN as root: %#x, %v", z, err)
	}
	t.Logf("zero page PFN %#x", z)
	// Any page only read maps the same page.
	m, base := mapPages(t, 1)
	if m[0] != 0 {
		t.Fatal("fresh page not 0")
	}
	es, err := openSelf(t).Entries(base, base+PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if PFN(es[0]) != z {
		t.Errorf("a read anonymous page maps PFN %#x, ZeroPFN says %#x", PFN(es[0]), z)
	}
}

// TestDataPages maps a page only read, one written and one untouched.
func TestDataPages(t *testing.T) {
	z, err := ZeroPFN()
	if err != nil {
		t.Skip(err)
	}
	m, base := mapPages(t, 3)
	if m[0] != 0 {
		t.Fatal("fresh page not 0")
	}
	m[PageSize] = 1
	pm := openSelf(t)
	for _, c := range []struct {
		name string
		sel  Selector
		want string
	}{
		{"AnonPages", AnonPages(false), "0-1"},
		{"DataPages", DataPages(false, z), "1"},
		{"DataPages without a zero PFN", DataPages(false, 0), "0-1"},
	} {
		rs, err := pm.Scan(base, base+3*PageSize, c.sel)
		if err != nil {
			t.Fatal(err)
		}
		if got := rangesOf(rs, base); got != c.want {
			t.Errorf("%s selected pages %q, want %q", c.name, got, c.want)
		}
	}
}

func TestEntries(t *testing.T) {
	m, base := mapPages(t, 4)
	m[PageSize], m[3*PageSize] = 1, 1
	pm := openSelf(t)
	es, err := pm.Entries(base, base+4*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	var present []bool
	for _, e := range es {
		present = append(present, e&pmPresent != 0)
	}
	if want := []bool{false, true, false, true}; len(es) != 4 || present[0] != want[0] || present[1] != want[1] || present[2] != want[2] || present[3] != want[3] {
		t.Errorf("present bits %v, want %v", present, want)
	}
	_, err = pm.Entries(base, base+10)
	if want := fmt.Sprintf("/proc/%d/pagemap: entries %#x-%#x: not a page-aligned range", os.Getpid(), base, base+10); err == nil || err.Error() != want {
		t.Errorf("unaligned Entries: %v, want %q", err, want)
	}
}

// TestAnonPagesSkipsGuards: a guard page reads as swapped in pagemap, and
// reading it for a dump would fault.
func TestAnonPagesSkipsGuards(t *testing.T) {
	const madvGuardInstall = 102 // Linux 6.13+
	m, base := mapPages(t, 3)
	m[0], m[2*PageSize] = 1, 1
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(base+PageSize), PageSize, madvGuardInstall); e != 0 {
		if kernelAtLeast(t, 6, 13) {
			t.Fatalf("MADV_GUARD_INSTALL: %v", e)
		}
		t.Skipf("MADV_GUARD_INSTALL: %v", e)
	}
	pm := openSelf(t)
	es, err := pm.Entries(base, base+3*PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if !IsMarker(es[1]) || es[1]&pmSwapped == 0 {
		t.Errorf("guard page entry %#x: want a swapped PTE marker", es[1])
	}
	rs, err := pm.Scan(base, base+3*PageSize, AnonPages(false))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rangesOf(rs, base), "0 2"; got != want {
		t.Errorf("AnonPages selected pages %q around a guard page, want %q", got, want)
	}
}

func TestIsMarker(t *testing.T) {
	for _, c := range []struct {
		e    uint64
		want bool
	}{
		{0x420000000000003f, true},  // uffd-wp marker, as read on Linux 6.18
		{0x440000000000009f, true},  // guard marker
		{0x4400000000000000, true},  // guard marker, PFNs hidden
		{0x4000000000000123, false}, // swap type 3
		{0x800000000000003f, false}, // present, PFN 0x3f
	} {
		if got := IsMarker(c.e); got != c.want {
			t.Errorf("IsMarker(%#x) = %v, want %v", c.e, got, c.want)
		}
	}
}
