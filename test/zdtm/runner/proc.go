package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The runner is a child subreaper: a test's root, once its launcher exits,
// and a restored tree, once gockpt restore -d exits, become its children, so
// it can collect their exit statuses and reap the zombies of killed trees
// (a zombie still holds its PID, and restore needs those PIDs free).
//
// Statuses are collected by one reaper (reap) with wait4(-1), only while no
// gockpt command runs: exec.Cmd waits for its own child by pidfd, but a
// wait4(-1) at the same time could take its status.

// exits holds the statuses reap collected, by PID.
var exits = map[int]unix.WaitStatus{}

func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
		exits[pid] = ws
	}
}

// startLauncher starts argv in dir with stdin on /dev/null and stdout and
// stderr appended to out, in a new session.
func startLauncher(argv, env []string, dir, out string) (int, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	of, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o666)
	if err != nil {
		return 0, err
	}
	defer of.Close()
	path := argv[0]
	if lp, err := exec.LookPath(path); err == nil {
		path = lp
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), of.Fd(), of.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err == nil {
		// An exit reaped earlier under this PID was another process's:
		// PIDs wrap (pid_max is 32768 here) within a suite run, and
		// waitExit would take that old status for the launcher's.
		delete(exits, pid)
	}
	return pid, err
}

// waitExit waits until pid has exited and returns its status if the runner
// reaped it (ok false: it was not our child, it is just gone).
func waitExit(pid int, deadline time.Time) (ws unix.WaitStatus, ok bool, err error) {
	for {
		reap()
		if ws, ok := exits[pid]; ok {
			delete(exits, pid)
			return ws, true, nil
		}
		if !alive(pid) {
			// Our child may have exited between the reap above and
			// this look: reap once more before saying it was not ours.
			reap()
			if ws, ok := exits[pid]; ok {
				delete(exits, pid)
				return ws, true, nil
			}
			return 0, false, nil
		}
		if time.Now().After(deadline) {
			return 0, false, fmt.Errorf("process %d still running after the timeout", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive says whether pid exists and is not a zombie.
func alive(pid int) bool {
	s, err := readString(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, _, _, _, state, err := ParseStat(s)
	return err == nil && state != 'Z'
}

// exists says whether the PID is taken at all (zombies included).
func exists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// startTime returns the start time of pid, 0 if it is gone.
func startTime(pid int) uint64 {
	s, err := readString(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, _, _, st, _, err := ParseStat(s)
	if err != nil {
		return 0
	}
	return st
}

// killAll SIGKILLs the given tasks and everything below them, and every
// descendant of the runner itself (all of which the runner started),
// collecting descendants before killing so that no one escapes by being
// reparented. A listed PID is only killed while it still has the start time
// recorded for it (0: not recorded, then only if it is the runner's
// descendant): a PID freed meanwhile may belong to someone else by now. It
// waits until the killed PIDs are free again.
func killAll(tasks map[int]uint64, deadline time.Time) error {
	targets := map[int]bool{}
	for p, st := range tasks {
		if st != 0 && startTime(p) == st {
			for _, d := range treePIDs(p) {
				targets[d] = true
			}
		}
	}
	for _, d := range treePIDs(os.Getpid()) {
		if d != os.Getpid() {
			targets[d] = true
		}
	}
	for p := range targets {
		_ = unix.Kill(p, unix.SIGKILL)
	}
	return waitGone(sortedKeys(targets), deadline)
}

// startTimes lists a tree's PIDs with their start times, for killAll.
func startTimes(t *Tree) map[int]uint64 {
	out := map[int]uint64{}
	if t != nil {
		for pid, task := range t.Tasks {
			out[pid] = task.StartTime
		}
	}
	return out
}

// waitGone waits until none of pids exists, reaping what becomes ours.
func waitGone(pids []int, deadline time.Time) error {
	for {
		reap()
		var left []int
		for _, p := range pids {
			if exists(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still exist", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
