package dump

import (
	"testing"
)

// The chain is CRIU's: 0-based indexes, the thread points at its innermost
// filter, each filter at the one installed before it, the first none.
func TestSeccompChainIndexes(t *testing.T) {
	var c seccompChain
	a, b, x := []byte("outer..."), []byte("inner..."), []byte("other...")
	// ptrace lists innermost first.
	if got := c.add([][]byte{b, a}); got != 1 {
		t.Errorf("first thread's innermost filter at %d, want 1", got)
	}
	if got := c.add([][]byte{b, a}); got != 1 {
		t.Errorf("same chain again at %d, want 1 (stored once)", got)
	}
	if got := c.add([][]byte{x, a}); got != 2 {
		t.Errorf("chain sharing the outer filter at %d, want 2", got)
	}
	if got := c.add([][]byte{a}); got != 0 {
		t.Errorf("outer filter alone at %d, want 0", got)
	}
	if len(c.entries) != 3 {
		t.Fatalf("%d entries, want 3", len(c.entries))
	}
	if c.entries[0].Prev != nil {
		t.Errorf("outermost filter has prev %d, want none", c.entries[0].GetPrev())
	}
	for i, want := range []uint32{0, 0} {
		e := c.entries[i+1]
		if e.Prev == nil || e.GetPrev() != want {
			t.Errorf("entry %d prev %v, want %d", i+1, e.Prev, want)
		}
	}
	if string(c.entries[1].GetFilter()) != "inner..." || string(c.entries[2].GetFilter()) != "other..." {
		t.Errorf("entries %q %q", c.entries[1].GetFilter(), c.entries[2].GetFilter())
	}
}
