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
