package ptrace

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Task is one process of a seized tree.
type Task struct {
	Pid      int
	Parent   *Task
	Children []*Task
	// Threads holds every thread, the main thread (Tid == Pid) first. A
	// zombie has none: it cannot be traced, only recorded.
	Threads []*Tracee
	Zombie  bool
}

// Tree is a process tree with every live thread seized and stopped.
type Tree struct {
	Root *Task
	t    *Tracer
}

// Tasks lists the tree's tasks, parents before children.
func (tr *Tree) Tasks() []*Task {
	var out []*Task
	var walk func(*Task)
	walk = func(t *Task) {
		out = append(out, t)
		for _, c := range t.Children {
			walk(c)
		}
	}
	if tr.Root != nil {
		walk(tr.Root)
	}
	return out
}

// maxTreePasses bounds the walks: a tree still changing after this many
// passes with everything we saw stopped is forking faster than we can follow.
const maxTreePasses = 50

// SeizeTree seizes every thread of root and of all its descendants. It walks
// /proc/PID/task/*/children again until a full pass finds nothing new, so
// tasks forking or exiting during the seize end up either seized or gone. On
// error every thread already seized is detached again; a thread that did
// not stop (*NotStoppedError) is let go when the Tracer is closed.
func (t *Tracer) SeizeTree(root int) (*Tree, error) {
	tree := &Tree{t: t}
	seized := map[int]*Tracee{}
	tasks := map[int]*Task{}
	for pass := 0; pass < maxTreePasses; pass++ {
		changed := false
		var walk func(pid int, parent *Task) error
		walk = func(pid int, parent *Task) error {
			task := tasks[pid]
			if task == nil {
				task = &Task{Pid: pid, Parent: parent}
				tasks[pid] = task
				if parent != nil {
					parent.Children = append(parent.Children, task)
				}
				changed = true
			}
			if z, err := isZombie(pid); err != nil {
				return err
			} else if z {
				// Threads seized in an earlier pass died with it (a
				// SIGKILL from outside): nothing of them is left to detach.
				task.Zombie = true
				task.Threads = nil
				return nil
			}
			tids, err := listThreads(pid)
			if err != nil {
				return err
			}
			for _, tid := range tids {
				if seized[tid] != nil {
					continue
				}
				te, err := t.seize(tid, pid)
				if err != nil {
					if errors.Is(err, unix.ESRCH) || (errors.Is(err, unix.EPERM) && exited(pid, tid)) {
						// The thread exited under us (PTRACE_SEIZE says
						// EPERM once it is a zombie): look again.
						changed = true
						continue
					}
					var ns *NotStoppedError
					if errors.As(err, &ns) {
						return err
					}
					return seizeError(pid, tid, err)
				}
				seized[tid] = te
				task.Threads = append(task.Threads, te)
				changed = true
			}
			// Children are listed per thread: each thread forks its own.
			for _, tid := range tids {
				kids, err := listChildren(pid, tid)
				if err != nil {
					continue // the thread just exited; the next pass decides
				}
				for _, c := range kids {
					if err := walk(c, task); err != nil {
						return err
					}
				}
			}
			return nil
		}
		err := walk(root, nil)
		if err != nil {
			tree.Root = tasks[root]
			tree.release(seized)
			return nil, err
		}
		if !changed {
			tree.Root = tasks[root]
			tree.prune()
			return tree, nil
		}
	}
	tree.Root = tasks[root]
	tree.release(seized)
	return nil, fmt.Errorf("process tree of %d kept changing over %d passes; is it forking in a loop?", root, maxTreePasses)
}

// prune drops tasks that exited during the seize (no thread left and not a
// zombie we could see) and orders threads with the main thread first.
func (tr *Tree) prune() {
	var walk func(*Task)
	walk = func(t *Task) {
		kids := t.Children[:0]
		for _, c := range t.Children {
			if len(c.Threads) > 0 || c.Zombie {
				kids = append(kids, c)
				walk(c)
			}
		}
		t.Children = kids
		sort.Slice(t.Threads, func(i, j int) bool {
			a, b := t.Threads[i].Tid, t.Threads[j].Tid
			if (a == t.Pid) != (b == t.Pid) {
				return a == t.Pid
			}
			return a < b
		})
	}
	walk(tr.Root)
}

func (tr *Tree) release(seized map[int]*Tracee) {
	for _, te := range seized {
		te.Detach()
	}
}

// Detach lets every thread run again.
func (tr *Tree) Detach() error {
	var first error
	for _, task := range tr.Tasks() {
		for _, te := range task.Threads {
			if err := te.Detach(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

func listThreads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("task %d: list threads: %w", pid, err)
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

func listChildren(pid, tid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, tid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// exited tells whether thread tid of pid has exited: gone, a zombie or
// dead. PTRACE_SEIZE refuses such a thread with EPERM (the kernel's
// exit_state check), the same error as a real lack of permission.
func exited(pid, tid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// SeizeError is a thread that could not be seized for a reason of its own,
// not because it exited.
type SeizeError struct {
	Pid, Tid int
	Comm     string
	// TracerPid is the process already tracing it, 0 if none.
	TracerPid  int
	TracerComm string
	Err        error
}

func (e *SeizeError) Error() string {
	who := fmt.Sprintf("task %d (%s)", e.Pid, e.Comm)
	if e.Tid != e.Pid {
		who = fmt.Sprintf("task %d (%s) thread %d", e.Pid, e.Comm, e.Tid)
	}
	switch {
	case e.TracerPid != 0:
		return fmt.Sprintf("%s is already traced by PID %d (%s): detach that debugger or tracer (or stop it), then dump again", who, e.TracerPid, e.TracerComm)
	case errors.Is(e.Err, unix.EPERM):
		return fmt.Sprintf("%s cannot be traced: %v: run gockpt as root (CAP_SYS_PTRACE) and check /proc/sys/kernel/yama/ptrace_scope", who, e.Err)
	}
	return fmt.Sprintf("%s cannot be frozen: %v", who, e.Err)
}

func (e *SeizeError) Unwrap() error { return e.Err }

// seizeError names the thread that could not be seized, and who traces it
// if someone does.
func seizeError(pid, tid int, err error) error {
	e := &SeizeError{Pid: pid, Tid: tid, Comm: "?", Err: err}
	var pe *Error
	if errors.As(err, &pe) {
		e.Err = pe.Err
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		e.Comm = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
				e.TracerPid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	if e.TracerPid != 0 {
		// TracerPid names the tracing thread; name its process.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.TracerPid)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
					if tgid, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
						e.TracerPid = tgid
					}
				}
			}
		}
		e.TracerComm = "?"
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", e.TracerPid)); err == nil {
			e.TracerComm = strings.TrimSpace(string(b))
		}
	}
	return e
}

func isZombie(pid int) (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("task %d: %w", pid, err)
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false, fmt.Errorf("task %d: malformed /proc/%d/stat", pid, pid)
	}
	return b[i+2] == 'Z', nil
}

// SuspendSeccomp makes every thread's seccomp filter (or strict mode) let
// the syscalls gockpt injects through while the tree is seized
// (PTRACE_O_SUSPEND_SECCOMP, which needs CAP_SYS_ADMIN); detaching ends
// it. Without it a filter that kills on, say, memfd_create would kill the
// task the moment a parasite is injected. A thread with seccomp on whose
// filter cannot be suspended is an error, before anything is injected.
func (tr *Tree) SuspendSeccomp() error {
	for _, t := range tr.Tasks() {
		for _, te := range t.Threads {
			err := te.SetOptions(SuspendSeccomp)
			if err == nil {
				continue
			}
			if mode := seccompMode(te.Tgid, te.Tid); mode != "0" {
				return fmt.Errorf("task %d thread %d runs under seccomp (mode %s) and its filter cannot be suspended (%v): syscalls gockpt injects could kill it; run gockpt with CAP_SYS_ADMIN", t.Pid, te.Tid, mode, err)
			}
		}
	}
	return nil
}

// seccompMode is the Seccomp field of the thread's status: "0" off, "1"
// strict, "2" filter; "" if unknown.
func seccompMode(tgid, tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", tgid, tid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
