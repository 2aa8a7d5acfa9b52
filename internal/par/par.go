// Package par runs independent pieces of work on a few goroutines.
package par

import (
	"sync"
	"sync/atomic"
)

// Each runs f(i) for every i in [0, n) on at most workers goroutines at
// once, and returns when all are done. Each i is run exactly once; the
// caller keeps results by index, so their order does not depend on timing.
func Each(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, max(workers, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// Ahead runs f(0), f(1), ... in order on a goroutine of its own, at most
// window calls ahead of what Wait has taken: what the caller needs next is
// ready when it gets there, and no more than window results wait at once.
type Ahead struct {
	done     []chan struct{}
	room     chan struct{}
	quit     chan struct{}
	finished chan struct{}
	stopOnce sync.Once
}

// NewAhead starts running f for indices 0 to n-1.
func NewAhead(n, window int, f func(i int)) *Ahead {
	a := &Ahead{
		done: make([]chan struct{}, n), room: make(chan struct{}, max(window, 1)),
		quit: make(chan struct{}), finished: make(chan struct{}),
	}
	for i := range a.done {
		a.done[i] = make(chan struct{})
	}
	go func() {
		defer close(a.finished)
		for i := range n {
			select {
			case a.room <- struct{}{}:
			case <-a.quit:
				return
			}
			select {
			case <-a.quit:
				return
			default:
			}
			f(i)
			close(a.done[i])
		}
	}()
	return a
}

// Wait returns once f(i) has returned, and makes room for one more call.
// The caller takes each index once, in order. It is false when Stop came
// first and f(i) will not run.
func (a *Ahead) Wait(i int) bool {
	select {
	case <-a.done[i]:
	case <-a.finished:
		select {
		case <-a.done[i]:
		default:
			return false
		}
	}
	<-a.room
	return true
}

// Stop starts no more calls and returns once the one running, if any, has
// returned. It may be called more than once.
func (a *Ahead) Stop() {
	a.stopOnce.Do(func() { close(a.quit) })
	<-a.finished
}
