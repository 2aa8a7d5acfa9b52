package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Tool is a checkpoint/restore binary with CRIU's command line.
type Tool struct {
	Name string // gockpt or CRIU
	Path string
}

// Sample is what one run of one tool on one workload measured. A zero
// duration with a non-empty error means the step failed or was not reached.
type Sample struct {
	Dump, Restore       time.Duration
	DumpRSS, RestoreRSS int64 // peak RSS of the tool process, KiB
	ImageBytes          int64
	DumpErr, RestoreErr string
}

// DumpOK and RestoreOK tell whether the step succeeded (the restore also
// passed the workload's check).
func (s Sample) DumpOK() bool    { return s.DumpErr == "" && s.Dump > 0 }
func (s Sample) RestoreOK() bool { return s.RestoreErr == "" && s.Restore > 0 }

// Runner runs the tools on workloads, one run at a time.
type Runner struct {
	Workload    string        // the compiled workload program
	WorkDir     string        // state, ready and output files of the runs
	ToolTimeout time.Duration // for one dump or restore command
	GoneTimeout time.Duration // for killed tasks to be gone
	DumpArgs    []string      // more dump options, for both tools
	// More options for gockpt's lazy-pages daemon (-lazy).
	GockptLazyArgs []string
	Ctx            context.Context // cancelled on an interrupt: tools are killed, cleanup still runs
}

const (
	readyTimeout = 5 * time.Minute
	pokeTimeout  = 2 * time.Minute
)

// Run starts the workload, dumps it with tool into imgDir, restores it and
// checks it, then kills what the restore made. It never leaves a task of
// its own running.
func (r *Runner) Run(tool Tool, w Workload, imgDir string) Sample {
	var s Sample
	runDir, err := os.MkdirTemp(r.WorkDir, w.Name+"-"+tool.Name+"-")
	if err != nil {
		s.DumpErr, s.RestoreErr = err.Error(), "not reached"
		return s
	}
	defer os.RemoveAll(runDir)
	defer ReapStray()
	if err := os.RemoveAll(imgDir); err != nil {
		s.DumpErr, s.RestoreErr = err.Error(), "not reached"
		return s
	}
	if err := os.MkdirAll(imgDir, 0o700); err != nil {
		s.DumpErr, s.RestoreErr = err.Error(), "not reached"
		return s
	}
	defer removeImages(imgDir)
	defer r.sweep()

	root, pids, before, err := r.start(w, runDir)
	if err != nil {
		KillAll(pids)
		_ = WaitGone(pids, r.GoneTimeout)
		s.DumpErr, s.RestoreErr = "workload: "+err.Error(), "not reached"
		return s
	}

	dumpArgs := append([]string{"-t", strconv.Itoa(root), "-D", imgDir, "-o", "dump.log", "-v4"}, r.DumpArgs...)
	s.Dump, s.DumpRSS, err = r.tool(tool, runDir, "dump", dumpArgs...)
	if err != nil {
		s.DumpErr, s.RestoreErr = err.Error()+logTail(imgDir, "dump.log"), "not reached"
		KillAll(pids)
		_ = WaitGone(pids, r.GoneTimeout)
		return s
	}
	if err := WaitGone(pids, r.GoneTimeout); err != nil {
		// The tool left the tree running: its PIDs are not free to restore.
		s.RestoreErr = "not reached: after the dump, " + err.Error()
		KillAll(pids)
		_ = WaitGone(pids, r.GoneTimeout)
		return s
	}
	s.ImageBytes = imageBytes(imgDir)
	syncDir(imgDir) // the images' writeback is not timed, nor left to the next run

	s.Restore, s.RestoreRSS, err = r.tool(tool, runDir, "restore", "-D", imgDir, "-d", "-o", "restore.log", "-v4")
	if err != nil {
		s.Restore = 0
		s.RestoreErr = err.Error() + logTail(imgDir, "restore.log")
	} else if err := r.check(w, runDir, root, pids, before); err != nil {
		s.Restore = 0
		s.RestoreErr = "restored wrong: " + err.Error()
	}
	after := TreePIDs(root)
	all := append(append([]int(nil), pids...), after...)
	KillAll(all)
	if err := WaitGone(all, r.GoneTimeout); err != nil && s.RestoreErr == "" {
		s.RestoreErr = "restored tree not killed: " + err.Error()
	}
	return s
}

// start runs the workload in a new session, waits until it is set up, and
// takes its state before the dump.
func (r *Runner) start(w Workload, runDir string) (root int, pids []int, before []TaskState, err error) {
	ready := filepath.Join(runDir, "ready")
	state := filepath.Join(runDir, "state")
	out, err := os.Create(filepath.Join(runDir, "workload.out"))
	if err != nil {
		return 0, nil, nil, err
	}
	defer out.Close()
	// setsid -f: the workload leads its own session and is nobody's child
	// but the subreaper's, as a process started from a shell and detached.
	cmd := exec.Command("setsid", append([]string{"-f", r.Workload}, w.Args(ready, state)...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return 0, nil, nil, fmt.Errorf("setsid -f %s: %w", r.Workload, err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		if b, err := os.ReadFile(ready); err == nil {
			if root, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				return 0, nil, nil, fmt.Errorf("ready file %q: not a PID", b)
			}
			break
		}
		if time.Now().After(deadline) || r.Ctx.Err() != nil {
			return 0, nil, nil, fmt.Errorf("not set up after %v: %s", readyTimeout, tail(filepath.Join(runDir, "workload.out")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	pids = TreePIDs(root)
	if len(pids) != w.Tasks() {
		return root, pids, nil, fmt.Errorf("%d tasks, want %d", len(pids), w.Tasks())
	}
	if n := ThreadCount(root); n != w.Threads() {
		return root, pids, nil, fmt.Errorf("%d threads, want %d", n, w.Threads())
	}
	before, err = r.poke(w, runDir, root, 1)
	if err != nil {
		return root, pids, nil, err
	}
	if err := CheckIntact(w, before); err != nil {
		return root, pids, nil, err
	}
	return root, pids, before, nil
}

// check verifies the restored tree: same PIDs, same threads, and each task
// answers with the state it had before the dump.
func (r *Runner) check(w Workload, runDir string, root int, pids []int, before []TaskState) error {
	if !Alive(root) {
		return fmt.Errorf("root task %d is not running", root)
	}
	got := TreePIDs(root)
	if fmt.Sprint(got) != fmt.Sprint(pids) {
		return fmt.Errorf("tasks %v, want %v", short(got), short(pids))
	}
	if n := ThreadCount(root); n != w.Threads() {
		return fmt.Errorf("%d threads, want %d", n, w.Threads())
	}
	after, err := r.poke(w, runDir, root, 2)
	if err != nil {
		return err
	}
	return CheckSame(before, after)
}

// poke sends SIGUSR1 to the root, which forwards it to its children, and
// waits for every task's line of the given round in the state file.
func (r *Runner) poke(w Workload, runDir string, root int, round uint64) ([]TaskState, error) {
	state := filepath.Join(runDir, "state")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		return nil, err
	}
	if err := unix.Kill(root, unix.SIGUSR1); err != nil {
		return nil, fmt.Errorf("SIGUSR1 to %d: %w", root, err)
	}
	deadline := time.Now().Add(pokeTimeout)
	for {
		b, err := os.ReadFile(state)
		if err != nil {
			return nil, err
		}
		states, err := ParseState(string(b))
		if err != nil {
			return nil, err
		}
		if Complete(states, w.Tasks(), round) {
			return states, nil
		}
		if time.Now().After(deadline) || r.Ctx.Err() != nil {
			return nil, fmt.Errorf("%d of %d tasks answered SIGUSR1 within %v", len(states), w.Tasks(), pokeTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tool runs one tool command and times it from outside, wall clock; it
// returns the peak RSS of the tool process from its wait4 rusage.
func (r *Runner) tool(t Tool, runDir, step string, args ...string) (time.Duration, int64, error) {
	out, err := os.Create(filepath.Join(runDir, t.Name+"-"+step+".out"))
	if err != nil {
		return 0, 0, err
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(r.Ctx, r.ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.Path, append([]string{step}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err = cmd.Run()
	d := time.Since(start)
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
	}
	if r.Ctx.Err() != nil {
		return 0, rss, fmt.Errorf("%s %s: interrupted", t.Name, step)
	}
	if ctx.Err() != nil {
		return 0, rss, fmt.Errorf("%s %s: killed after %v", t.Name, step, r.ToolTimeout)
	}
	if err != nil {
		return 0, rss, fmt.Errorf("%s %s: %w: %s", t.Name, step, err, tail(out.Name()))
	}
	return d, rss, nil
}

// sweep kills and reaps any task still running the workload binary: a
// workload that never got set up, or a half-restored tree.
func (r *Runner) sweep() {
	if left := TasksRunning(r.Workload); len(left) > 0 {
		KillAll(left)
		_ = WaitGone(left, r.GoneTimeout)
	}
}

// tail returns the last non-empty line of a file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// logTail returns the last error line of a tool's log in the image
// directory, where both tools put -o's file.
func logTail(imgDir, name string) string {
	f, err := os.Open(filepath.Join(imgDir, name))
	if err != nil {
		return ""
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "Error") || strings.Contains(l, "error") {
			last = strings.TrimSpace(l)
		}
	}
	if last == "" {
		return ""
	}
	return " (" + name + ": " + last + ")"
}

// imageBytes sums the image files, logs left out.
func imageBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".log") {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func syncDir(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Syncfs(int(f.Fd()))
}

// removeImages removes an image directory and waits for the disk to take
// the removal, so that one run's writeback does not land in the next one.
func removeImages(dir string) {
	_ = os.RemoveAll(dir)
	syncDir(filepath.Dir(dir))
}

func short(pids []int) string {
	if len(pids) <= 6 {
		return fmt.Sprint(pids)
	}
	return fmt.Sprintf("%v ... (%d)", pids[:6], len(pids))
}
