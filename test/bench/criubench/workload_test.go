package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// These tests run the workload program for real, small, with fake tools:
// no timing is asserted, only what the bench sees and reports.

var workloadBin string // built once by TestMain, "" without gcc

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if _, err := exec.LookPath("gcc"); err == nil {
			dir, err := os.MkdirTemp("", "criubench-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			if workloadBin, err = BuildWorkload(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}())
}

func newRunner(t *testing.T) *Runner {
	t.Helper()
	if workloadBin == "" {
		t.Skip("gcc not found: the workload cannot be built")
	}
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	r := &Runner{Workload: workloadBin, WorkDir: t.TempDir(), ToolTimeout: time.Minute, GoneTimeout: time.Minute, Ctx: context.Background()}
	t.Cleanup(func() {
		if left := TasksRunning(workloadBin); len(left) > 0 {
			KillAll(left)
			_ = WaitGone(left, time.Minute)
			t.Errorf("workload tasks left running: %v", left)
		}
	})
	return r
}

// Every mode, small: it sets up, reports all its objects intact, and answers
// a second SIGUSR1 with the same checksums one round later.
func TestWorkloadModes(t *testing.T) {
	r := newRunner(t)
	for _, w := range []Workload{
		{Name: "mem-1MiB", Mode: "mem", N: 1},
		{Name: "tree-5", Mode: "tree", N: 5},
		{Name: "threads-1", Mode: "threads", N: 1},
		{Name: "threads-8", Mode: "threads", N: 8},
		{Name: "fds-100", Mode: "fds", N: 100},
		{Name: "vmas-50", Mode: "vmas", N: 50},
	} {
		runDir := t.TempDir()
		root, pids, before, err := r.start(w, runDir)
		if err == nil {
			if len(before) != w.Tasks() {
				t.Errorf("%s: %d state lines, want %d", w.Name, len(before), w.Tasks())
			}
			var again []TaskState
			if again, err = r.poke(w, runDir, root, 2); err == nil {
				err = CheckSame(before, again)
			}
		}
		if err != nil {
			t.Errorf("%s: %v", w.Name, err)
		}
		KillAll(pids)
		if err := WaitGone(pids, r.GoneTimeout); err != nil {
			t.Errorf("%s: %v", w.Name, err)
		}
	}
}

// fakeTool writes a shell script with CRIU's command line: dump -t PID ...
func fakeTool(t *testing.T, script string) Tool {
	path := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return Tool{Name: "fake", Path: path}
}

func TestRunFailures(t *testing.T) {
	r := newRunner(t)
	w := Workload{Name: "tree-3", Mode: "tree", N: 3}
	for _, c := range []struct {
		name, script      string
		dumpOK            bool
		dumpErr, restErr  string // exact, or a regexp when restErrRE
		restErrRE, keepWL bool
	}{
		{name: "dump fails", script: "echo 'Error: cannot seize' >&2; exit 1",
			dumpErr: "fake dump: exit status 1: Error: cannot seize", restErr: "not reached"},
		// A dump that kills the tree and a restore that brings nothing
		// back: the check must fail the restore, not time it.
		{name: "restore brings nothing back", script: "[ $1 = dump ] && kill -9 -$3; exit 0",
			dumpOK: true, restErr: `^restored wrong: root task [0-9]+ is not running$`, restErrRE: true},
		{name: "dump leaves the tree running", script: "exit 0",
			dumpOK: true, restErr: `^not reached: after the dump, 3 tasks still there after 200ms \(PID [0-9]+ first\)$`, restErrRE: true},
	} {
		r.GoneTimeout = time.Minute
		if c.name == "dump leaves the tree running" {
			r.GoneTimeout = 200 * time.Millisecond
		}
		s := r.Run(fakeTool(t, c.script), w, filepath.Join(t.TempDir(), "img"))
		if s.DumpOK() != c.dumpOK || s.DumpErr != c.dumpErr {
			t.Errorf("%s: dump ok %v, error %q; want %v, %q", c.name, s.DumpOK(), s.DumpErr, c.dumpOK, c.dumpErr)
		}
		if s.RestoreOK() {
			t.Errorf("%s: restore counted as a success", c.name)
		}
		if c.restErrRE {
			if !regexp.MustCompile(c.restErr).MatchString(s.RestoreErr) {
				t.Errorf("%s: restore error %q, want %s", c.name, s.RestoreErr, c.restErr)
			}
		} else if s.RestoreErr != c.restErr {
			t.Errorf("%s: restore error %q, want %q", c.name, s.RestoreErr, c.restErr)
		}
		// Killed tasks may take a moment to die; running ones never would.
		if err := WaitGone(TasksRunning(workloadBin), 10*time.Second); err != nil {
			t.Errorf("%s: workload tasks left running: %v", c.name, err)
		}
	}
}
