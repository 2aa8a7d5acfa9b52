package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// TaskState is one line of the workload's state file: what one task found
// in its own state on one SIGUSR1.
type TaskState struct {
	Idx   int    // 0 for the root, 1..N-1 for a tree's children
	Round uint64 // SIGUSR1 rounds served by the task, 1 before the dump
	Sum   string // checksum of the task's state, hex
	OK    int64  // objects found intact
}

// ParseState parses the state file; a partial last line (a task still
// writing) is left out.
func ParseState(text string) ([]TaskState, error) {
	var out []TaskState
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if i == len(lines)-1 {
			break // after the last newline: empty, or a line being written
		}
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("state line %d %q: want 4 fields", i+1, l)
		}
		idx, err1 := strconv.Atoi(f[0])
		round, err2 := strconv.ParseUint(f[1], 10, 64)
		ok, err3 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("state line %d %q: not IDX ROUND SUM OK", i+1, l)
		}
		out = append(out, TaskState{Idx: idx, Round: round, Sum: f[2], OK: ok})
	}
	return out, nil
}

// Complete reports whether states hold one line of the given round for each
// of the workload's tasks.
func Complete(states []TaskState, tasks int, round uint64) bool {
	seen := map[int]bool{}
	for _, s := range states {
		if s.Round == round && s.Idx >= 0 && s.Idx < tasks {
			seen[s.Idx] = true
		}
	}
	return len(seen) == tasks
}

// CheckIntact checks that every task reported all its objects intact.
func CheckIntact(w Workload, states []TaskState) error {
	want := w.WantOK()
	for _, s := range sortedStates(states) {
		if s.OK != want {
			return fmt.Errorf("task %d: %d of %d %s intact", s.Idx, s.OK, want, unit(w))
		}
	}
	return nil
}

// CheckSame checks that after the restore every task reports the state it
// reported before the dump, one round later.
func CheckSame(before, after []TaskState) error {
	b := map[int]TaskState{}
	for _, s := range before {
		b[s.Idx] = s
	}
	for _, a := range sortedStates(after) {
		s, ok := b[a.Idx]
		if !ok {
			return fmt.Errorf("task %d: not there before the dump", a.Idx)
		}
		if a.Round != s.Round+1 {
			return fmt.Errorf("task %d: round %d after the restore, want %d", a.Idx, a.Round, s.Round+1)
		}
		if a.Sum != s.Sum || a.OK != s.OK {
			return fmt.Errorf("task %d: checksum %s (%d intact) after the restore, %s (%d intact) before the dump",
				a.Idx, a.Sum, a.OK, s.Sum, s.OK)
		}
		delete(b, a.Idx)
	}
	if len(b) > 0 {
		missing := -1
		for idx := range b {
			if missing < 0 || idx < missing {
				missing = idx
			}
		}
		return fmt.Errorf("task %d: did not answer after the restore", missing)
	}
	return nil
}

func sortedStates(states []TaskState) []TaskState {
	s := append([]TaskState(nil), states...)
	sort.Slice(s, func(i, j int) bool { return s[i].Idx < s[j].Idx })
	return s
}

func unit(w Workload) string {
	switch w.Mode {
	case "threads":
		return "other threads"
	case "fds":
		return "fds"
	case "vmas":
		return "VMAs"
	default:
		return "pages"
	}
}
