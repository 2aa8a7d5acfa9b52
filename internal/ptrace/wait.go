package ptrace

import (
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel sends the tracer SIGCHLD whenever a tracee stops or exits.
// A waiter with a time limit waits for that signal instead of polling:
// it takes the current "changed" channel, checks with WNOHANG, and if
// nothing is there sleeps until the channel is closed (a SIGCHLD came) or
// the time is up. Every SIGCHLD closes the channel and makes a new one, so
// all waiters wake, and one that arrives between the check and the sleep
// is not missed.
var childEvents struct {
	once    sync.Once
	mu      sync.Mutex
	changed chan struct{}
}

// childChanged returns a channel closed at the next SIGCHLD.
func childChanged() <-chan struct{} {
	ce := &childEvents
	ce.once.Do(func() {
		ce.changed = make(chan struct{})
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, unix.SIGCHLD)
		go func() {
			for range sig {
				ce.mu.Lock()
				close(ce.changed)
				ce.changed = make(chan struct{})
				ce.mu.Unlock()
			}
		}()
	})
	ce.mu.Lock()
	defer ce.mu.Unlock()
	return ce.changed
}

// missedSignalNap bounds each sleep of WaitTimeout, in case SIGCHLD is
// blocked or ignored where gockpt runs as a library.
const missedSignalNap = 5 * time.Millisecond

// WaitTimeout waits for tid to report a stop or an exit, at most d; ok is
// false when it did neither in time. Runs on the tracer thread; it never
// blocks in wait4, so a thread that never stops cannot wedge the tracer.
func WaitTimeout(tid int, d time.Duration) (ws unix.WaitStatus, ok bool, err error) {
	deadline := time.Now().Add(d)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		changed := childChanged()
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return ws, false, err
		}
		if wpid == tid {
			return ws, true, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ws, false, nil
		}
		nap := min(left, missedSignalNap)
		if timer == nil {
			timer = time.NewTimer(nap)
		} else {
			timer.Reset(nap)
		}
		select {
		case <-changed:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}
