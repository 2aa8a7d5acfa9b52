package ptrace

import (
	"testing"
	"time"
)

// TestNotStoppedErrorText: the refusal of a task that would not stop
// names the task (and thread), its state, where it sleeps, and what to do.
func TestNotStoppedErrorText(t *testing.T) {
	cases := []struct {
		e    NotStoppedError
		want string
	}{
		{NotStoppedError{Pid: 10, Tid: 10, Comm: "app", State: "D (disk sleep)", Wchan: "kernel_clone", VforkChild: 11, VforkChildComm: "app", Waited: 10 * time.Second},
			"task 10 (app) is in vfork: waiting for child 11 (app) to exec or exit, and cannot be stopped until then (waited 10s, state D (disk sleep)): dump again once child 11 has exec'd or exited"},
		{NotStoppedError{Pid: 10, Tid: 12, Comm: "app", State: "D (disk sleep)", Wchan: "fuse_wait_answer", Waited: 2 * time.Second},
			"task 10 (app) thread 12 did not stop within 2s: it is in uninterruptible sleep (state D (disk sleep) in fuse_wait_answer), where no signal reaches it; see what it waits for (cat /proc/10/task/12/stack), then dump again once it has woken, or give it longer with --timeout"},
		{NotStoppedError{Pid: 10, Tid: 10, Comm: "app", State: "D (disk sleep)", Waited: time.Second},
			"task 10 (app) did not stop within 1s: it is in uninterruptible sleep (state D (disk sleep)), where no signal reaches it; see what it waits for (cat /proc/10/task/10/stack), then dump again once it has woken, or give it longer with --timeout"},
		{NotStoppedError{Pid: 10, Tid: 10, Comm: "app", State: "R (running)", Waited: time.Second},
			"task 10 (app) did not stop within 1s (state R (running)): dump again, or give it longer with --timeout"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}
