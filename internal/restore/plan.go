// Package restore rebuilds a process tree from images.
//
// gockpt never forks (the Go runtime forbids it). Every task starts as a
// clone of a tiny stub process and is rebuilt from outside over ptrace with
// injected syscalls. The work goes in two passes over the tree:
//
//   - pass 1, parents before children: create the task with its PID (clone3
//     with set_tid, injected into the already-restored parent, so parentage,
//     sessions and groups come out right), then mappings and the vDSO, fs,
//     fds, signal handlers, timers, rlimits, personality, comm, pending
//     signals. A task's syscalls run in lists, a ptrace stop per list, in a
//     small runner of the stub's (remote.go). Its pages are written by a
//     worker beside the tracer (pages.go); the task is settled (pages in,
//     protections, mm fields) before a child is cloned from it and before
//     pass 2. Children are cloned while their parent still has full
//     privileges and no seccomp filter.
//   - pass 2: the SELinux label (before any other thread exists: SELinux lets
//     only single-threaded tasks change context), the other threads and
//     their per-thread state, creds.
//   - then, with every task and thread in place: SIGIO owners and O_ASYNC
//     (set from inside a task holding the file, so the kernel records its
//     fd), file locks (--file-locks: each taken by its holder, once no fd
//     of the tree will be closed any more), and last the seccomp filters.
//
// Then every thread gets its registers, the stub's pages are unmapped, and
// all threads are detached together (or left stopped). Any error kills every
// task restored so far; the images are only read, never written. Before any
// task is made, the images are checked to agree with each other (check.go).
package restore

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/par"
	pb "github.com/gockpt/gockpt/proto"
)

// Task is one task of the plan.
type Task struct {
	Pid, Ppid, Pgid, Sid int
	Threads              []int
	Parent               *Task
	Children             []*Task
	Cores                map[int]*pb.CoreEntry
	MM                   *pb.MmEntry
	IDs                  *pb.TaskKobjIdsEntry
	FS                   *pb.FsEntry
	Fds                  []*pb.FdinfoEntry
	Zombie               bool
}

// Core is the leader thread's core.
func (t *Task) Core() *pb.CoreEntry { return t.Cores[t.Pid] }

// Plan is everything the images say, checked and cross-linked.
type Plan struct {
	Dir       *images.Dir
	Inventory *pb.InventoryEntry
	Root      *Task
	Tasks     []*Task // parents before children
	Files     map[uint32]*pb.FileEntry
	Remaps    map[uint32]*pb.RemapFilePathEntry // by file id
	Seccomp   []*pb.SeccompFilter
	// UTS holds the UTS namespaces the dump saw apart from its own, by id.
	UTS map[uint32]*pb.UtsnsEntry
	// Locks are the file locks to take again (filelocks.img), in order.
	Locks []*pb.FileLockEntry
}

// readEntries reads every entry of image name into messages made by mk,
// with their raw payloads.
func readEntries[T proto.Message](d *images.Dir, name string, mk func() T) ([]T, [][]byte, error) {
	r, err := d.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var out []T
	var extras [][]byte
	for {
		m := mk()
		extra, err := r.ReadEntry(m)
		if errors.Is(err, io.EOF) {
			return out, extras, nil
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, m)
		extras = append(extras, extra)
	}
}

// optionalEntries is readEntries for images a dump writes only when needed.
func optionalEntries[T proto.Message](d *images.Dir, name string, mk func() T) ([]T, [][]byte, error) {
	if !d.Exists(name) {
		return nil, nil, nil
	}
	return readEntries(d, name, mk)
}

// LoadPlan reads and checks the images of dir.
func LoadPlan(dir string) (*Plan, error) {
	d, err := images.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	p := &Plan{Dir: d, Files: map[uint32]*pb.FileEntry{}, Remaps: map[uint32]*pb.RemapFilePathEntry{}}
	p.Inventory = &pb.InventoryEntry{}
	if !d.Exists(images.InventoryFile) {
		return nil, missingInventory(d)
	}
	if err := d.ReadOne(images.InventoryFile, p.Inventory); err != nil {
		return nil, err
	}
	if v := p.Inventory.GetImgVersion(); v != 2 {
		return nil, fmt.Errorf("inventory.img: image version %d is not supported (gockpt reads version 2, CRIU 3.x and later)", v)
	}
	if p.Inventory.GetPreDumpMode() != 0 {
		return nil, fmt.Errorf("%s holds a pre-dump (memory only): restore needs the final dump, made with gockpt dump --prev-images-dir pointing at this pre-dump; restore from that directory", d.Path())
	}
	if !d.Exists(images.PstreeFile) {
		return nil, &MismatchError{Dir: d.Path(), Msg: "inventory.img is there but pstree.img is missing"}
	}
	entries, _, err := readEntries(d, images.PstreeFile, func() *pb.PstreeEntry { return &pb.PstreeEntry{} })
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("pstree.img: no tasks")
	}
	byPid := map[int]*Task{}
	for i, e := range entries {
		t := &Task{Pid: int(e.GetPid()), Ppid: int(e.GetPpid()), Pgid: int(e.GetPgid()), Sid: int(e.GetSid()), Cores: map[int]*pb.CoreEntry{}}
		if t.Pid <= 1 {
			return nil, fmt.Errorf("pstree.img entry %d: PID %d cannot be restored", i, t.Pid)
		}
		if byPid[t.Pid] != nil {
			return nil, fmt.Errorf("pstree.img: PID %d appears twice", t.Pid)
		}
		for _, tid := range e.GetThreads() {
			t.Threads = append(t.Threads, int(tid))
		}
		if len(t.Threads) == 0 || t.Threads[0] != t.Pid {
			sort.Ints(t.Threads)
			if len(t.Threads) == 0 || !containsInt(t.Threads, t.Pid) {
				if !deadTask(d, t.Pid) {
					return nil, fmt.Errorf("pstree.img: task %d does not list its own main thread", t.Pid)
				}
				t.Threads = []int{t.Pid}
			}
		}
		byPid[t.Pid] = t
		if i == 0 {
			p.Root = t
		} else {
			parent := byPid[t.Ppid]
			if parent == nil {
				return nil, fmt.Errorf("pstree.img: task %d has parent %d, which is not earlier in the tree", t.Pid, t.Ppid)
			}
			t.Parent = parent
			parent.Children = append(parent.Children, t)
		}
		p.Tasks = append(p.Tasks, t)
	}
	if err := p.loadTasks(); err != nil {
		return nil, err
	}
	if err := p.loadFiles(); err != nil {
		return nil, err
	}
	log.Debugf("images of %d tasks and %d files read", len(p.Tasks), len(p.Files))
	if err := p.check(); err != nil {
		return nil, err
	}
	log.Debugf("images checked")
	return p, nil
}

// loadTasks reads every task's images, several tasks at once (a tree of
// a thousand tasks has thousands of small files); the error reported is
// the first task's in tree order, whatever finished first.
func (p *Plan) loadTasks() error {
	for _, err := range eachTask(p.Tasks, p.loadTask) {
		if err != nil {
			return err
		}
	}
	return nil
}

// eachTask runs f for every task, on a few goroutines at once, and returns
// the errors in the order of tasks.
func eachTask(tasks []*Task, f func(*Task) error) []error {
	errs := make([]error, len(tasks))
	par.Each(len(tasks), 2*runtime.GOMAXPROCS(0), func(i int) { errs[i] = f(tasks[i]) })
	return errs
}

// inTree tells the tasks and threads of the plan.
func (p *Plan) inTree() func(pid int) bool {
	in := map[int]bool{}
	for _, t := range p.Tasks {
		in[t.Pid] = true
		for _, tid := range t.Threads {
			in[tid] = true
		}
	}
	return func(pid int) bool { return in[pid] }
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (p *Plan) loadTask(t *Task) error {
	d := p.Dir
	need := func(name, what string) error {
		if d.Exists(name) {
			return nil
		}
		return &MismatchError{Dir: d.Path(), Msg: fmt.Sprintf("pstree.img lists %s, but %s is missing", what, name)}
	}
	for _, tid := range t.Threads {
		if err := need(images.CoreFile(tid), fmt.Sprintf("thread %d of task %d", tid, t.Pid)); err != nil {
			return err
		}
		c := &pb.CoreEntry{}
		if err := d.ReadOne(images.CoreFile(tid), c); err != nil {
			return fmt.Errorf("task %d: %w", t.Pid, err)
		}
		if c.GetMtype() != pb.CoreEntry_X86_64 {
			return fmt.Errorf("task %d thread %d: core is for %v, gockpt restores x86_64 only", t.Pid, tid, c.GetMtype())
		}
		t.Cores[tid] = c
	}
	tc := t.Core().GetTc()
	if tc == nil {
		return fmt.Errorf("task %d: %s has no task core", t.Pid, images.CoreFile(t.Pid))
	}
	switch tc.GetTaskState() {
	case images.TaskDead: // a zombie holds nothing else
		t.Zombie = true
		return nil
	case images.TaskAlive, images.TaskStopped:
	default:
		return fmt.Errorf("task %d: task state %d is not supported", t.Pid, tc.GetTaskState())
	}
	if err := checkTaskCore(t); err != nil {
		return err
	}
	for tid, c := range t.Cores {
		if c.GetThreadInfo().GetGpregs() == nil {
			return fmt.Errorf("task %d thread %d: %s has no registers", t.Pid, tid, images.CoreFile(tid))
		}
	}
	for _, name := range []string{images.MMFile(t.Pid), images.IDsFile(t.Pid), images.FSFile(t.Pid)} {
		if err := need(name, fmt.Sprintf("task %d", t.Pid)); err != nil {
			return err
		}
	}
	t.MM = &pb.MmEntry{}
	if err := d.ReadOne(images.MMFile(t.Pid), t.MM); err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	t.IDs = &pb.TaskKobjIdsEntry{}
	if err := d.ReadOne(images.IDsFile(t.Pid), t.IDs); err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	t.FS = &pb.FsEntry{}
	if err := d.ReadOne(images.FSFile(t.Pid), t.FS); err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	if err := need(images.FdinfoFile(t.IDs.GetFilesId()), fmt.Sprintf("task %d (its %s names fd table %d)", t.Pid, images.IDsFile(t.Pid), t.IDs.GetFilesId())); err != nil {
		return err
	}
	fds, _, err := readEntries(d, images.FdinfoFile(t.IDs.GetFilesId()), func() *pb.FdinfoEntry { return &pb.FdinfoEntry{} })
	if err != nil {
		return fmt.Errorf("task %d: %w", t.Pid, err)
	}
	t.Fds = fds
	return nil
}

func (p *Plan) loadFiles() error {
	d := p.Dir
	files, _, err := optionalEntries(d, images.FilesFile, func() *pb.FileEntry { return &pb.FileEntry{} })
	if err != nil {
		return err
	}
	for _, f := range files {
		p.Files[f.GetId()] = f
	}
	remaps, _, err := optionalEntries(d, images.RemapFpathFile, func() *pb.RemapFilePathEntry { return &pb.RemapFilePathEntry{} })
	if err != nil {
		return err
	}
	for _, r := range remaps {
		p.Remaps[r.GetOrigId()] = r
	}
	p.UTS = map[uint32]*pb.UtsnsEntry{}
	for _, t := range p.Tasks {
		id := t.IDs.GetUtsNsId()
		name := images.UtsnsFile(id)
		if t.IDs == nil || p.UTS[id] != nil || !d.Exists(name) {
			continue
		}
		e := &pb.UtsnsEntry{}
		if err := d.ReadOne(name, e); err != nil {
			return err
		}
		p.UTS[id] = e
	}
	if d.Exists(images.SeccompFile) {
		var s pb.SeccompEntry
		if err := d.ReadOne(images.SeccompFile, &s); err != nil {
			return err
		}
		p.Seccomp = s.GetSeccompFilters()
	}
	return p.loadLocks()
}
