package main

import (
	"fmt"
	"time"
)

// Mode is one way of checkpointing a running test between "ready" and
// SIGTERM. A new mode is one more entry in modes built from the Run steps
// PreDump, Checkpoint, CRIUCheckpoint, KillTree, RestoreAndVerify,
// LazyRestoreAndVerify, CRIURestoreAndVerify and Verify.
type Mode struct {
	Name string
	Desc string
	CR   func(r *Run) error
	// OptIn: not one of a test's default modes; only tests whose header
	// names it (or the mode it runs With) run it (it is still in the
	// runner's default -m set).
	OptIn bool
	// With names a mode this one comes with: every test that runs that
	// mode runs this one too, unless its header excludes it ("modes: ...
	// -NAME"). The page-server modes come with the modes they repeat
	// through a page server.
	With string
	// PageServer: the pages of every pre-dump and dump (gockpt's or
	// CRIU's) go to a page server the runner starts for that iteration on
	// its images directory, gockptPageServer or criuPageServer (see
	// pageserver.go).
	PageServer string
	// Lazy: the mode restores post-copy (LazyRestoreAndVerify), with a
	// lazy-pages daemon the runner starts for the restore as this says
	// (see lazy.go).
	Lazy *LazyPages
	// CRIUDumps: CRIU dumps the tree (the runner's comparison allows for
	// how CRIU's images differ).
	CRIUDumps bool
	// Missing, when set, says why the mode cannot run here ("" when it
	// can); its runs are then counted as skipped.
	Missing func(cfg *Config) string
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
	{Name: "predump", Desc: "pre-dump --track-mem into img-1, pre-dump --track-mem --prev-images-dir ../img-1 into img-2, dump --track-mem --prev-images-dir ../img-2 into img-3 (which kills the tree), restore -d from img-3 through the parent chain; the test runs on for 100 ms after each pre-dump, which must leave the tree running and unchanged",
		CR: func(r *Run) error { return r.preDumpChain(true) }},
	{Name: "page-server", With: "restore", PageServer: gockptPageServer, Desc: "gockpt page-server on the images directory img-1 (--port 0: the port it prints), dump --page-server --address 127.0.0.1 --port P (which kills the tree; the pages go to the server, the rest of the images to img-1), the page server must exit 0 after it and img-1 must hold its pages images only (pages-65537.img up), then restore -d (every test that runs restore, unless its header says -page-server)",
		CR: func(r *Run) error { return r.pageServerCycle() }},
	{Name: "predump-page-server", With: "predump", PageServer: gockptPageServer, Desc: "the predump chain with every iteration's pages sent to a gockpt page-server started on that iteration's images directory (given the same --prev-images-dir), each checked as in page-server, then restore -d from img-3 (every test that runs predump, unless its header says -predump-page-server)",
		CR: func(r *Run) error { return r.preDumpChain(true) }},
	{Name: "lazy", With: "restore", Lazy: &LazyPages{}, Desc: "dump (which kills the tree), gockpt lazy-pages -D img-1 -o lazy-pages.log -v4 (its socket lazy-pages.socket in img-1), restore -d --lazy-pages: the tree runs while the daemon pushes its lazy pages in; the daemon must exit 0 once they are all in place (before SIGTERM), with no error in its log and a summary of at least one task (every test that runs restore, unless its header says -lazy)",
		CR: func(r *Run) error { return r.lazyCycle() }},
	{Name: "lazy-faults", With: "restore", Lazy: &LazyPages{Push: "0"}, Desc: "lazy with the daemon's --push-pages 0: no background copies, every lazy page comes by fault while the test checks its memory after SIGTERM (and forks, mremaps, madvises, unmaps: the daemon follows the events); the daemon must exit 0 once the tree has ended, checked as in lazy (every test that runs restore, unless its header says -lazy-faults)",
		CR: func(r *Run) error { return r.lazyCycle() }},
	{Name: "predump-lazy", With: "predump", Lazy: &LazyPages{ZeroTasksOK: true}, Desc: "the predump chain, then restore -d --lazy-pages from img-3 with gockpt lazy-pages -D img-3: pages the final dump left in the parent images are restored at once through the chain, those it wrote (lazy) come from the daemon, checked as in lazy; a daemon that served no task (nothing lazy written since the last pre-dump) passes with a note on the PASS line (every test that runs predump, unless its header says -predump-lazy)",
		CR: func(r *Run) error { return r.preDumpChainThen(true, r.LazyRestoreAndVerify) }},
	{Name: "predump-hashes", OptIn: true, Desc: "the predump chain without --track-mem: each iteration after the first finds changed pages by comparing contents with its parent images (only tests whose header names it)",
		CR: func(r *Run) error { return r.preDumpChain(false) }},
	{Name: "make-lazy", OptIn: true, Lazy: &LazyPages{MakeLazy: true}, Desc: "dump into img-1 (which kills the tree), gockpt image make-lazy img-1 img-2 (img-2: every image but the lazy pages' data), gockpt lazy-pages -D img-1 --address SOCK serving them, restore -d --lazy-pages --address SOCK -D img-2 (SOCK: lazy-pages.socket in the run's directory); checked as in lazy (only tests whose header names it)",
		CR: func(r *Run) error { return r.lazyCycle() }},
	{Name: "criu-restore", OptIn: true, Desc: "dump (which kills the tree), then CRIU restores gockpt's images: $GOCKPT_TEST_CRIU restore -d (default ../shared/anchors/criu-4.2/criu beside the repository; skipped where it is missing), its log criu-restore.log in the images directory (only tests whose header names it)",
		Missing: criuMissing,
		CR: func(r *Run) error {
			if err := r.Checkpoint(checkpointOpts{}); err != nil {
				return err
			}
			return r.CRIURestoreAndVerify()
		}},
	{Name: "criu-dump", OptIn: true, CRIUDumps: true, Desc: "CRIU dumps the tree ($GOCKPT_TEST_CRIU dump, which kills it; its log criu-dump.log in the images directory), then gockpt restore -d restores CRIU's images (only tests whose header names it)",
		Missing: criuMissing,
		CR: func(r *Run) error {
			if err := r.CRIUCheckpoint(); err != nil {
				return err
			}
			return r.RestoreAndVerify(restoreOpts{})
		}},
	{Name: "criu-predump", OptIn: true, Desc: "the predump chain (pre-dump --track-mem twice, dump --track-mem, each with --prev-images-dir), then CRIU restores the final images through the parent chain (only tests whose header names it)",
		Missing: criuMissing,
		CR:      func(r *Run) error { return r.preDumpChainThen(true, r.CRIURestoreAndVerify) }},
	{Name: "criu-page-server", OptIn: true, With: "criu-restore", PageServer: criuPageServer, Desc: "CRIU's page server ($GOCKPT_TEST_CRIU page-server -D img-1 --port P --address 127.0.0.1 --status-fd, its log page-server.log in img-1) receives the pages of gockpt dump --page-server, must exit 0 after it, img-1 must hold its pages images only; then gockpt restore -d (every test that runs criu-restore, unless its header says -criu-page-server)",
		Missing: criuMissing,
		CR:      func(r *Run) error { return r.pageServerCycle() }},
	{Name: "criu-dump-page-server", OptIn: true, With: "criu-dump", PageServer: gockptPageServer, CRIUDumps: true, Desc: "gockpt page-server receives the pages of CRIU's dump ($GOCKPT_TEST_CRIU dump --page-server --address 127.0.0.1 --port P, which kills the tree), must exit 0 after it, img-1 must hold its pages images only; then gockpt restore -d (every test that runs criu-dump, unless its header says -criu-dump-page-server)",
		Missing: criuMissing,
		CR: func(r *Run) error {
			if err := r.CRIUCheckpoint(); err != nil {
				return err
			}
			return r.RestoreAndVerify(restoreOpts{})
		}},
}

// preDumpPause is how long the test runs on (and writes memory) after each
// pre-dump, before the next iteration.
const preDumpPause = 100 * time.Millisecond

// preDumpChain is the predump modes: two pre-dumps and a final dump, each
// iteration chained to the previous one with --prev-images-dir, then a
// restore from the last images directory. track: with --track-mem (the
// kernel tracks written pages between iterations) rather than comparing
// page contents with the parent images.
func (r *Run) preDumpChain(track bool) error {
	return r.preDumpChainThen(track, func() error { return r.RestoreAndVerify(restoreOpts{}) })
}

// preDumpChainThen is preDumpChain with the restore step given.
func (r *Run) preDumpChainThen(track bool, restore func() error) error {
	var opts []string
	if track {
		opts = []string{"--track-mem"}
	}
	for i := 1; i <= 2; i++ {
		if err := r.PreDump(preDumpOpts{Extra: append(opts, r.prevImagesOpts()...)}); err != nil {
			return fmt.Errorf("pre-dump %d: %w", i, err)
		}
		time.Sleep(preDumpPause)
	}
	final := append(append(opts, "--display-stats"), r.prevImagesOpts()...)
	if err := r.Checkpoint(checkpointOpts{Extra: final}); err != nil {
		return fmt.Errorf("final dump: %w", err)
	}
	// Pages no iteration wrote since the previous one stay in the parent
	// images; every test has some (libraries' data, quiet stacks), so none
	// means the chain was not incremental at all (tracking lost, parent
	// images ignored) and the restore below would prove nothing about it.
	if r.stats != nil && r.stats["skipped from parent"] == 0 {
		return fmt.Errorf("final dump left no page in the parent images (%s): the chain was not incremental", formatStats(r.stats))
	}
	if err := r.checkNothingLeft("after the final dump"); err != nil {
		return err
	}
	return restore()
}

// pageServerCycle is a dump through the mode's page server, with
// --display-stats (what the dump says it wrote is checked against what the
// server received), then restore.
func (r *Run) pageServerCycle() error {
	if err := r.Checkpoint(checkpointOpts{Extra: []string{"--display-stats"}}); err != nil {
		return err
	}
	return r.RestoreAndVerify(restoreOpts{})
}

func (r *Run) dumpRestoreCycle() error {
	if err := r.Checkpoint(checkpointOpts{}); err != nil {
		return err
	}
	return r.RestoreAndVerify(restoreOpts{})
}

// defaultRunModes are the modes run when -m is not given (and for -m all):
// the default modes of a test, then the opt-in modes.
func defaultRunModes() []string {
	out := append([]string{}, defaultModes...)
	for _, m := range modes {
		if m.OptIn {
			out = append(out, m.Name)
		}
	}
	return out
}

func findMode(name string) *Mode {
	for _, m := range modes {
		if m.Name == name {
			return m
		}
	}
	return nil
}
