package mem

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// dirtyPages prints which pages of the area at base runs hold, marking the
// dirty ones with '*'.
func dirtyPages(runs []Run, base uint64) string {
	s := ""
	for _, r := range runs {
		for a := r.Start; a < r.End(); a += PageSize {
			mark := ""
			if r.Dirty {
				mark = "*"
			}
			s += fmt.Sprintf("%d%s ", (a-base)/PageSize, mark)
		}
	}
	return s
}

// TestUffdTracker arms a tracker on an area of our own, writes two pages,
// drops one with MADV_DONTNEED, and expects exactly that; re-arming in the
// same scan leaves nothing written; an untrusted area is all dirty.
func TestUffdTracker(t *testing.T) {
	m, base := mapPages(t, 8)
	for i := range 8 {
		m[i*PageSize] = 1
	}
	u, _, err := NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK | UffdUserModeOnly)
	if err != nil {
		t.Skip(err)
	}
	defer u.Close()
	if _, err := u.HandshakeWPAsync(); errors.Is(err, ErrNoWPAsync) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	tr := UffdTracker{U: u}
	pm := openSelf(t)
	area := Area{Start: base, End: base + 8*PageSize}
	runs, err := tr.Runs(pm, area, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirtyPages(runs, base); got != "0* 1* 2* 3* 4* 5* 6* 7* " {
		t.Fatalf("untrusted area: %q, want every page dirty", got)
	}
	armed, err := tr.Arm(os.Getpid(), []ArmArea{{Area: area, Runs: runs}})
	if err != nil {
		t.Fatal(err)
	}
	if len(armed) != 1 || armed[0].Start != area.Start || armed[0].End != area.End {
		t.Fatalf("armed %+v, want the area", armed)
	}
	area.UffdWP = true // as smaps now shows it
	m[3*PageSize] = 2
	m[6*PageSize] = 2
	unix.Madvise(m[5*PageSize:6*PageSize], unix.MADV_DONTNEED)
	runs, err = tr.Runs(pm, area, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirtyPages(runs, base); got != "0 1 2 3* 4 6* 7 " {
		t.Fatalf("after writing 3 and 6 and dropping 5: %q", got)
	}
	runs, err = tr.Runs(pm, area, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirtyPages(runs, base); got != "0 1 2 3 4 6 7 " {
		t.Fatalf("after the re-arming scan: %q, want nothing written", got)
	}
	// A tracker that does not hold the area (another userfaultfd) does
	// not vouch for it.
	other, _, _ := NewUffd(unix.O_CLOEXEC | unix.O_NONBLOCK | UffdUserModeOnly)
	defer other.Close()
	other.HandshakeWPAsync()
	runs, err = UffdTracker{U: other}.Runs(pm, area, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirtyPages(runs, base); got != "0* 1* 2* 3* 4* 6* 7* " {
		t.Fatalf("another userfaultfd's verdict: %q, want every page dirty", got)
	}
}

// TestNoTracker: every page with data, dirty; the zero page left out.
func TestNoTracker(t *testing.T) {
	m, base := mapPages(t, 4)
	m[0] = 1
	readSink += m[2*PageSize] // read: maps the zero page
	m[3*PageSize] = 1
	if e, _ := openSelf(t).Entries(base+2*PageSize, base+3*PageSize); e[0]&pmPresent == 0 {
		t.Fatal("the read did not map the zero page")
	}
	runs, err := NoTracker{}.Runs(openSelf(t), Area{Start: base, End: base + 4*PageSize}, true, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "0* 3* "
	if _, err := ZeroPFN(); err != nil {
		want = "0* 2* 3* " // PFNs hidden: the zero page looks like data
	}
	if got := dirtyPages(runs, base); got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

// TestSoftDirtyTrackerUntrusted: without trust (or without soft-dirty, as
// here) every page with data is dirty.
func TestSoftDirtyTrackerUntrusted(t *testing.T) {
	m, base := mapPages(t, 2)
	m[0], m[PageSize] = 1, 1
	runs, err := SoftDirtyTracker{}.Runs(openSelf(t), Area{Start: base, End: base + 2*PageSize}, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirtyPages(runs, base); got != "0* 1* " {
		t.Fatalf("%q", got)
	}
}

func TestCoveredBy(t *testing.T) {
	rs := [][2]uint64{{0, 10}, {10, 20}, {30, 40}}
	for _, c := range []struct {
		s, e uint64
		want bool
	}{{0, 20, true}, {5, 15, true}, {0, 25, false}, {30, 40, true}, {25, 35, false}, {40, 50, false}} {
		if got := coveredBy(c.s, c.e, rs); got != c.want {
			t.Errorf("coveredBy(%d, %d) = %v, want %v", c.s, c.e, got, c.want)
		}
	}
}

var readSink byte
