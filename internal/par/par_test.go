package par

import (
	"sync/atomic"
	"testing"
)

// TestEach: every index runs once, with any number of workers.
func TestEach(t *testing.T) {
	for _, workers := range []int{0, 1, 3, 100} {
		for _, n := range []int{0, 1, 7, 1000} {
			seen := make([]atomic.Int32, n)
			Each(n, workers, func(i int) { seen[i].Add(1) })
			for i := range seen {
				if c := seen[i].Load(); c != 1 {
					t.Fatalf("workers %d n %d: index %d ran %d times", workers, n, i, c)
				}
			}
		}
	}
}

// TestAhead: every index runs once, in order, never more than window
// ahead of Wait; Stop ends it early and Wait then says so.
func TestAhead(t *testing.T) {
	for _, window := range []int{0, 1, 4} {
		const n = 200
		var ran atomic.Int64
		var taken atomic.Int64
		order := make([]int64, n)
		a := NewAhead(n, window, func(i int) {
			order[i] = ran.Add(1)
			// taken counts a Wait once it returned: one more may
			// have started in between.
			if ahead := ran.Load() - taken.Load(); ahead > int64(max(window, 1))+1 {
				t.Errorf("window %d: index %d runs %d ahead", window, i, ahead)
			}
		})
		for i := range n {
			if !a.Wait(i) {
				t.Fatalf("window %d: Wait(%d) false without Stop", window, i)
			}
			taken.Add(1)
			if order[i] != int64(i+1) {
				t.Fatalf("window %d: index %d ran as call %d", window, i, order[i])
			}
		}
		a.Stop()
		a.Stop()
	}
	block := make(chan struct{})
	a := NewAhead(10, 2, func(i int) {
		if i == 1 {
			<-block
		}
	})
	if !a.Wait(0) {
		t.Fatal("Wait(0) false")
	}
	go func() { close(block) }()
	a.Stop()
	if a.Wait(3) {
		t.Fatal("Wait(3) true after Stop")
	}
}
