package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The bench makes itself the child subreaper: the workloads started with
// setsid -f, and the trees the tools restore with -d, are reparented to it
// when their parent exits, so it reaps them as soon as they die instead of
// waiting for PID 1, which reaps orphans late here. A tool needs the PIDs
// free before it can restore them.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become the child subreaper: %w", err)
	}
	return nil
}

// ParseChildren parses a /proc/PID/task/TID/children file.
func ParseChildren(text string) ([]int, error) {
	var pids []int
	for _, f := range strings.Fields(text) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("children %q: %q is not a PID", text, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// TreePIDs returns root and all its descendants, sorted, by walking
// /proc/PID/task/*/children.
func TreePIDs(root int) []int {
	seen := map[int]bool{}
	todo := []int{root}
	for len(todo) > 0 {
		pid := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[pid] || !exists(pid) {
			continue
		}
		seen[pid] = true
		files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread has exited
			}
			kids, err := ParseChildren(string(b))
			if err != nil {
				continue
			}
			todo = append(todo, kids...)
		}
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

func exists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// ParseStatState returns the state letter of a /proc/PID/stat line.
func ParseStatState(stat string) (byte, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0, fmt.Errorf("stat %q: no state after the command name", stat)
	}
	return stat[i+2], nil
}

// Alive reports whether pid is a live task (not a zombie, not gone).
func Alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := ParseStatState(string(b))
	return err == nil && st != 'Z' && st != 'X'
}

// ThreadCount returns the number of threads of pid.
func ThreadCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// KillAll sends SIGKILL to every PID of pids that still exists.
func KillAll(pids []int) {
	for _, pid := range pids {
		if exists(pid) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// WaitGone waits until no PID of pids exists any more, reaping those that
// are the bench's children (by subreaping), for at most timeout.
func WaitGone(pids []int, timeout time.Duration) error {
	left := append([]int(nil), pids...)
	deadline := time.Now().Add(timeout)
	for {
		next := left[:0]
		for _, pid := range left {
			var ws unix.WaitStatus
			got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if got == pid || (errors.Is(err, unix.ECHILD) && !exists(pid)) {
				continue
			}
			next = append(next, pid)
		}
		left = next
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d tasks still there after %v (PID %d first)", len(left), timeout, left[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ReapStray reaps any zombie child left behind (a helper a tool left
// orphaned). It is called only when no tool runs, so it takes no exit status
// a running command is waiting for.
func ReapStray() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// TasksRunning returns the PIDs of the tasks whose executable is bin: the
// workload binary lives in the bench's own temp dir, so these are tasks the
// bench started or a tool restored from them, and nothing else.
func TasksRunning(bin string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == bin {
			pids = append(pids, pid)
		}
	}
	return pids
}
