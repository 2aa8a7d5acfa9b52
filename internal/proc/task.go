package proc

import (
	"bytes"
	"os"
	"sort"
	"strconv"
)

// ParseChildren parses /proc/PID/task/TID/children: the space-separated pids
// of the children this thread created.
func ParseChildren(b []byte) ([]int, error) {
	fields := bytes.Fields(b)
	pids := make([]int, 0, len(fields))
	for _, f := range fields {
		pid, ok := parseInt(f)
		if !ok || pid <= 0 {
			return nil, parseErrorf("children", 0, "bad pid %q", clip(f))
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// ReadChildren reads /proc/PID/task/TID/children.
func ReadChildren(pid, tid int) ([]int, error) {
	path := Path(pid, "task", itoa(tid), "children")
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	pids, err := ParseChildren(b)
	return pids, renameError(err, path)
}

// ReadAllChildren returns the children of every thread of pid, sorted. The
// result is a snapshot: only a stopped tree stops changing.
func ReadAllChildren(pid int) ([]int, error) {
	tids, err := ListTasks(pid)
	if err != nil {
		return nil, err
	}
	var all []int
	for _, tid := range tids {
		c, err := ReadChildren(pid, tid)
		if os.IsNotExist(err) {
			continue // the thread exited since the listing
		}
		if err != nil {
			return nil, err
		}
		all = append(all, c...)
	}
	sort.Ints(all)
	return all, nil
}

// ListTasks returns the thread ids of pid, sorted.
func ListTasks(pid int) ([]int, error) {
	dir := Path(pid, "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil || tid <= 0 {
			return nil, parseErrorf(dir, 0, "entry %q is not a thread id", e.Name())
		}
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	return tids, nil
}
