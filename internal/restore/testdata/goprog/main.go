// goprog is a restore test target: goroutines passing values over channels,
// timers and a forced GC, checking a heap map every round.
// Usage: goprog DIR; writes DIR/ready, appends "ok N" or "BAD N" to DIR/log.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

func main() {
	dir := os.Args[1]
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		os.Exit(2)
	}
	heap := map[int][]byte{}
	for i := 0; i < 2000; i++ {
		heap[i] = make([]byte, 512)
		heap[i][7] = byte(i)
	}
	ch := make(chan int)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for {
				ch <- g
				time.Sleep(time.Millisecond)
			}
		}(g)
	}
	os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600)
	tick := time.NewTicker(5 * time.Millisecond)
	// Goroutines must keep sending: every 20 ticks at least one value.
	last, received := time.Now(), 0
	for n := 0; ; {
		select {
		case <-ch:
			received++
		case now := <-tick.C:
			runtime.GC()
			ok := now.After(last) && (n%20 != 19 || received > 0)
			for i := 0; i < 2000; i++ {
				ok = ok && heap[i][7] == byte(i)
			}
			last = now
			if n%20 == 19 {
				received = 0
			}
			word := "ok"
			if !ok {
				word = "BAD"
			}
			fmt.Fprintf(log, "%s %d\n", word, n)
			n++
		}
	}
}
