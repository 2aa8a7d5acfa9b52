package restore

import "testing"

// TestFdTable: the lowest free number is the kernel's: numbers taken in
// order, a hole left, a number taken far above.
func TestFdTable(t *testing.T) {
	tb := newFdTable(10)
	for want := uint64(0); want < 4; want++ {
		if got := tb.lowestFree(); got != want {
			t.Fatalf("lowest free %d, want %d", got, want)
		}
		tb.open(want)
	}
	tb.open(5) // 4 stays a hole
	if got := tb.lowestFree(); got != 4 {
		t.Fatalf("lowest free %d, want 4", got)
	}
	tb.open(4)
	for _, n := range []uint64{6, 7, 8, 9} {
		if got := tb.lowestFree(); got != n {
			t.Fatalf("lowest free %d, want %d", got, n)
		}
		tb.open(n)
	}
	if got := tb.lowestFree(); got != 11 { // 10 is the pidfd
		t.Fatalf("lowest free %d, want 11", got)
	}
	tb.open(40)
	if got := tb.lowestFree(); got != 11 {
		t.Fatalf("after 40: lowest free %d, want 11", got)
	}
}
