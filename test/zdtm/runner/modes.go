package main

import "fmt"

// Mode is one way of checkpointing a running test between "ready" and
// SIGTERM. A new mode is one more entry in modes built from the Run steps
// Checkpoint, KillTree, RestoreAndVerify and Verify, for example:
//
//   - predump: a pre-dump step (gockpt pre-dump --track-mem into img-N),
//     then Checkpoint with Extra --prev-images-dir pointing at it, then
//     RestoreAndVerify;
//   - lazy: Checkpoint, then RestoreAndVerify with Extra --lazy-pages and a
//     lazy-pages daemon the mode starts and stops around it;
//   - page-server: a page-server daemon on the images directory, Checkpoint
//     with Extra --page-server --address --port, RestoreAndVerify.
type Mode struct {
	Name string
	Desc string
	CR   func(r *Run) error
}

var modes = []*Mode{
	{Name: "none", Desc: "no checkpoint: start, wait for ready, look again, SIGTERM (proves the tests' own checks and that the runner's comparison sees no difference in an untouched tree)",
		CR: func(r *Run) error { return r.Verify("untouched tree") }},
	{Name: "dump", Desc: "dump --leave-running only: the original tree runs on and must still pass (a dump must not harm its target)",
		CR: func(r *Run) error { return r.Checkpoint(checkpointOpts{LeaveRunning: true}) }},
	{Name: "restore", Desc: "dump (which kills the tree), then restore -d",
		CR: func(r *Run) error { return r.dumpRestoreCycle() }},
	{Name: "snapshot", Desc: "dump --leave-running, kill the original tree by PID, restore -d",
		CR: func(r *Run) error {
			if err := r.Checkpoint(checkpointOpts{LeaveRunning: true}); err != nil {
				return err
			}
			if err := r.KillTree(); err != nil {
				return err
			}
			return r.RestoreAndVerify(restoreOpts{})
		}},
	{Name: "twice", Desc: "dump and restore twice in a row on the same tree",
		CR: func(r *Run) error {
			for i := 0; i < 2; i++ {
				if err := r.dumpRestoreCycle(); err != nil {
					return fmt.Errorf("cycle %d: %w", i+1, err)
				}
			}
			return nil
		}},
}

func (r *Run) dumpRestoreCycle() error {
	if err := r.Checkpoint(checkpointOpts{}); err != nil {
		return err
	}
	return r.RestoreAndVerify(restoreOpts{})
}

func findMode(name string) *Mode {
	for _, m := range modes {
		if m.Name == name {
			return m
		}
	}
	return nil
}
