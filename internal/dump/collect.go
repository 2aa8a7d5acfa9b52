package dump

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/kcmp"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/pageserver"
	"github.com/gockpt/gockpt/internal/par"
	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// dumper is one dump in progress.
type dumper struct {
	opts     Options
	dir      *images.Dir
	tree     *ptrace.Tree
	files    *files.Dumper
	stats    *Stats
	seccomp  seccompChain
	ids      kobjIDs
	timedOut atomic.Bool
	// cures undo parasite injections still in place, newest last.
	cures  []func() error
	pstree []*pb.PstreeEntry
	pages  uint32 // pages-N.img counter
	// fdTables are the fd tables (files ids) written: tasks sharing one
	// (CLONE_FILES) have one fdinfo image.
	fdTables map[uint32]bool
	// watchdog cleans parasite leftovers if gockpt dies; may be nil.
	watchdog *parasite.Watchdog
	// inc is the previous iteration of an incremental dump; nil for a
	// full dump.
	inc *incremental
	// memJobs write small tasks' pages beside the tracer.
	memJobs memJobs
	// shmem are the shared anonymous objects the tree maps, by shmid.
	shmem map[uint64]*shmemObject
	// netLocked: the network lock of the tree's connections holds.
	netLocked bool
	// ps is the page server session, when pages go there.
	ps *pageserver.Client
	// lazy serves the lazy pages of a --lazy-pages dump.
	lazy *lazyServe
}

func (d *dumper) checkTimeout() error {
	if d.timedOut.Load() {
		return fmt.Errorf("dump took longer than --timeout %v: the tree was let go unchanged; raise --timeout", d.opts.Timeout)
	}
	return nil
}

func (d *dumper) run() (err error) {
	defer func() {
		// No page job outlives the dump, whatever happened.
		if err != nil {
			d.memJobs.cancel()
		}
		if werr := d.waitMemory(); err == nil {
			err = werr
		}
	}()
	tasks := d.tree.Tasks()
	reads := make([]taskReads, len(tasks))
	window := readAhead
	if d.opts.AfterTask != nil {
		window = 0 // the hook may change what the next task shows
	}
	var ahead *par.Ahead
	if window > 0 {
		smaps := unsharedMMs(tasks)
		ahead = par.NewAhead(len(tasks), window, func(i int) {
			reads[i] = readTask(d.files.Checker, tasks[i], smaps[i])
		})
		defer ahead.Stop()
	}
	for i, t := range tasks {
		if err := d.checkTimeout(); err != nil {
			return err
		}
		if ahead == nil || !ahead.Wait(i) {
			reads[i] = readTask(d.files.Checker, t, true)
		}
		if err := d.task(t, &reads[i]); err != nil {
			return err
		}
		reads[i] = taskReads{}
		if d.opts.AfterTask != nil {
			if err := d.opts.AfterTask(t.Pid); err != nil {
				return err
			}
		}
	}
	if err := d.waitMemory(); err != nil {
		return err
	}
	if d.opts.FileLocks {
		if err := unseenLocks(d.files.Checker, d.files); err != nil {
			return err
		}
	}
	return d.writeGlobal()
}

// readAhead is how many tasks' /proc reads are made ahead of the tracer.
const readAhead = 4

// taskReads is what the frozen pass reads about a task from /proc alone.
// A goroutine reads it a few tasks ahead of the tracer (readTask), so the
// reads fill the time the tracer waits for tasks to stop and answer.
type taskReads struct {
	err     error // reading failed: the task's dump fails with it
	refusal error // taskRefusals' answer
	st      *proc.Stat
	status  *proc.Status
	// smaps is nil when the task shares its mm with another task of
	// the tree: a parasite in that one would show up in it.
	smaps []proc.SmapsVMA
}

// readTask reads what taskReads holds; the smaps only with withSmaps.
func readTask(c *files.Checker, t *ptrace.Task, withSmaps bool) taskReads {
	var r taskReads
	var err error
	if r.st, err = proc.ReadStat(t.Pid); err != nil {
		r.err = fmt.Errorf("task %d: %w", t.Pid, err)
		return r
	}
	if t.Zombie {
		return r
	}
	if r.refusal = taskRefusals(c, t.Pid, r.st, true); r.refusal != nil {
		return r
	}
	if r.status, err = proc.ReadStatus(t.Pid); err != nil {
		r.err = fmt.Errorf("task %d: %w", t.Pid, err)
		return r
	}
	if withSmaps {
		if r.smaps, err = proc.ReadSmaps(t.Pid); err != nil {
			r.err = fmt.Errorf("task %d: %w", t.Pid, err)
		}
	}
	return r
}

// unsharedMMs says, per task, whether its mm is its own (a vfork child or
// a CLONE_VM task shares its parent's).
func unsharedMMs(tasks []*ptrace.Task) []bool {
	set := kcmp.Set[int]{Type: kcmp.VM}
	own := make([]bool, len(tasks))
	for i, t := range tasks {
		if t.Zombie {
			continue
		}
		if j, ok := set.Find(t.Pid, 0); ok {
			own[j] = false
			continue
		}
		set.Add(t.Pid, 0, i)
		own[i] = true
	}
	return own
}

// task dumps one task of the tree, r what readTask read of it.
func (d *dumper) task(t *ptrace.Task, r *taskReads) error {
	if r.err != nil {
		return r.err
	}
	st := r.st
	ppid := 0
	if t.Parent != nil {
		ppid = t.Parent.Pid
	}
	pe := &pb.PstreeEntry{
		Pid: proto.Uint32(uint32(t.Pid)), Ppid: proto.Uint32(uint32(ppid)),
		Pgid: proto.Uint32(uint32(st.Pgrp)), Sid: proto.Uint32(uint32(st.Session)),
	}
	d.pstree = append(d.pstree, pe)
	if t.Zombie {
		pe.Threads = []uint32{uint32(t.Pid)}
		d.stats.Tasks++
		return d.zombie(t, st)
	}
	for _, te := range t.Threads {
		pe.Threads = append(pe.Threads, uint32(te.Tid))
	}
	d.stats.Tasks++
	d.stats.Threads += len(t.Threads)
	if r.refusal != nil {
		return r.refusal
	}
	status := r.status

	cores := make([]*pb.CoreEntry, len(t.Threads))
	for i, te := range t.Threads {
		if err := sudRefusal(d.files.Checker, t.Pid, te); err != nil {
			return err
		}
		c, err := threadCore(t.Pid, te, d.opts.LSM.ProcessLabel, &d.seccomp)
		if err != nil {
			return err
		}
		cores[i] = c
	}
	tc, err := d.taskCore(t, st, status)
	if err != nil {
		return err
	}
	// The task core's mask is the main thread's to return to, as CRIU
	// means it: ptrace's (inside sigsuspend or ppoll the mask /proc shows
	// is the call's own, for the time of the call).
	tc.BlkSigset = cores[0].ThreadCore.BlkSigset
	cores[0].Tc = tc

	plans, err := collectVMAs(t.Pid, d.files, r.smaps)
	if err != nil {
		return err
	}
	d.addShmem(t.Pid, plans)
	mm, err := d.mm(t, st, plans)
	if err != nil {
		return err
	}

	// The parasite reads what only the task can tell, and its pages; it is
	// cured before the next task.
	err = d.withParasite(t, func(p *parasite.Parasite) error {
		if err := d.fromParasite(p, t, cores, mm); err != nil {
			return err
		}
		return d.memory(t, st.StartTime, plans, p, newLazyMap(plans, cores))
	})
	if err != nil {
		return err
	}
	// Pending signals last: a timer that expired while the task was frozen
	// (or while the parasite ran) has queued its signal by now.
	if err := pendingSignals(t, cores); err != nil {
		return err
	}
	ids, err := d.ids.of(t.Pid)
	if err != nil {
		return err
	}
	if err := d.fds(t, ids.GetFilesId()); err != nil {
		return err
	}
	fs, err := d.fs(t, status)
	if err != nil {
		return err
	}

	for i, te := range t.Threads {
		if err := d.dir.WriteOne(images.CoreFile(te.Tid), images.KindCore, cores[i]); err != nil {
			return err
		}
	}
	if err := d.dir.WriteOne(images.MMFile(t.Pid), images.KindMM, mm); err != nil {
		return err
	}
	if err := d.dir.WriteOne(images.IDsFile(t.Pid), images.KindIDs, ids); err != nil {
		return err
	}
	if err := d.dir.WriteOne(images.FSFile(t.Pid), images.KindFS, fs); err != nil {
		return err
	}
	return nil
}

// zombie records a dead task: its core says so, with its exit code.
func (d *dumper) zombie(t *ptrace.Task, st *proc.Stat) error {
	core := &pb.CoreEntry{
		Mtype: pb.CoreEntry_X86_64.Enum(),
		Tc: &pb.TaskCoreEntry{
			TaskState:   proto.Uint32(images.TaskDead),
			ExitCode:    proto.Uint32(uint32(st.ExitCode)),
			Personality: proto.Uint32(0),
			Flags:       proto.Uint32(st.Flags),
			BlkSigset:   proto.Uint64(0),
			Comm:        proto.String(st.Comm),
		},
	}
	return d.dir.WriteOne(images.CoreFile(t.Pid), images.KindCore, core)
}

func (d *dumper) taskCore(t *ptrace.Task, st *proc.Stat, status *proc.Status) (*pb.TaskCoreEntry, error) {
	pers, err := readIntFile(fmt.Sprintf("/proc/%d/personality", t.Pid), 16)
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", t.Pid, err)
	}
	rl, err := rlimits(t.Pid)
	if err != nil {
		return nil, err
	}
	tc := &pb.TaskCoreEntry{
		TaskState:   proto.Uint32(images.TaskAlive),
		ExitCode:    proto.Uint32(0),
		Personality: proto.Uint32(uint32(pers)),
		Flags:       proto.Uint32(st.Flags),
		BlkSigset:   proto.Uint64(status.SigBlk),
		Comm:        proto.String(st.Comm),
		Rlimits:     rl,
	}
	if te := t.Threads[0]; te.GroupStopped {
		tc.TaskState = proto.Uint32(images.TaskStopped)
		tc.StopSigno = proto.Uint32(uint32(te.StopSignal))
	}
	if v, err := readIntFile(fmt.Sprintf("/proc/%d/loginuid", t.Pid), 10); err == nil {
		tc.Loginuid = proto.Uint32(uint32(v))
	}
	if v, err := readIntFile(fmt.Sprintf("/proc/%d/oom_score_adj", t.Pid), 10); err == nil {
		tc.OomScoreAdj = proto.Int32(int32(v))
	}
	return tc, nil
}

// mm builds the task's mm entry: VMAs, the mm fields /proc/PID/stat shows,
// auxv and exe. The current brk and THP setting come from the parasite.
func (d *dumper) mm(t *ptrace.Task, st *proc.Stat, plans []vmaPlan) (*pb.MmEntry, error) {
	auxv, err := readAuxv(t.Pid)
	if err != nil {
		return nil, err
	}
	exe := fmt.Sprintf("/proc/%d/exe", t.Pid)
	exePath, err := os.Readlink(exe)
	if err != nil {
		return nil, fmt.Errorf("task %d: exe link: %w", t.Pid, err)
	}
	var est unix.Stat_t
	if err := unix.Stat(exe, &est); err != nil {
		return nil, fmt.Errorf("task %d: exe %s: %w", t.Pid, exePath, err)
	}
	exeID, err := d.files.Path(fmt.Sprintf("task %d executable", t.Pid), exe, exePath, &est, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	mm := &pb.MmEntry{
		MmStartCode: proto.Uint64(st.StartCode), MmEndCode: proto.Uint64(st.EndCode),
		MmStartData: proto.Uint64(st.StartData), MmEndData: proto.Uint64(st.EndData),
		MmStartStack: proto.Uint64(st.StartStack), MmStartBrk: proto.Uint64(st.StartBrk),
		MmArgStart: proto.Uint64(st.ArgStart), MmArgEnd: proto.Uint64(st.ArgEnd),
		MmEnvStart: proto.Uint64(st.EnvStart), MmEnvEnd: proto.Uint64(st.EnvEnd),
		ExeFileId:   proto.Uint32(exeID),
		MmSavedAuxv: auxv,
	}
	for _, p := range plans {
		mm.Vmas = append(mm.Vmas, p.entry)
		if p.aio != nil {
			mm.Aios = append(mm.Aios, p.aio)
		}
	}
	guards, err := guardEntries(t.Pid, plans)
	if err != nil {
		return nil, err
	}
	mm.Vmas = append(mm.Vmas, guards...)
	return mm, nil
}

// memory writes the task's private pages: pagemap-PID.img lists them,
// pages-N.img holds their bytes in the same order. In an incremental dump
// pages unchanged since the parent images are listed as in the parent.
func (d *dumper) memory(t *ptrace.Task, start uint64, plans []vmaPlan, p *parasite.Parasite, lazy *lazyMap) error {
	begin := time.Now()
	tt, err := d.inc.taskTrack(t.Pid, start, false)
	if err != nil {
		return err
	}
	log.Debugf("task %d: parent images opened in %v", t.Pid, time.Since(begin))
	runs, scanned, err := pageRuns(t.Pid, plans, tt)
	if err != nil {
		return err
	}
	log.Debugf("task %d: %d runs of pages found in %v", t.Pid, len(runs), time.Since(begin))
	d.stats.PagesScanned += scanned
	d.opts.Progress.AddTotal(dirtyPages(runs))
	dest, err := d.openPages(pageserver.Task(t.Pid), tt != nil && tt.parent != nil)
	if err != nil {
		return err
	}
	d.stats.MemdumpTime += time.Since(begin)
	out := &pagemapOut{stream: dest.stream, lazy: lazy}
	incremental := tt != nil && tt.parentHashes != nil
	if d.lazy != nil {
		if incremental {
			dest.abandon()
			return fmt.Errorf("task %d: dump --lazy-pages with --prev-images-dir needs --track-mem with a kernel tracker (uffd-wp or soft-dirty): pages compared by content cannot be left out", t.Pid)
		}
		out.lazyOut = func(r mem.Range) { d.lazy.noteLazy(t.Pid, r) }
	}
	var dirty []mem.Range
	var dirtyBytes uint64
	if !incremental {
		for _, r := range runs {
			for _, w := range out.add(r.Range, r.vma, !r.dirty) {
				dirty = append(dirty, w)
				dirtyBytes += w.Len
			}
		}
	}
	job := func() (memStats, error) {
		begin := time.Now()
		defer dest.abandon()
		var err error
		if incremental {
			vm := newVMReader(t.Pid)
			defer vm.close()
			err = hashRuns(vm, runs, tt.parentHashes, out, nil, dest.writer(), false)
			d.opts.Progress.Add(dirtyPages(runs))
		} else {
			err = d.copyPages(t.Pid, plans, dirty, p, dest)
		}
		if err != nil {
			return memStats{}, fmt.Errorf("task %d: %w", t.Pid, err)
		}
		log.Debugf("task %d: pages copied after %v", t.Pid, time.Since(begin))
		if err := dest.finish(d, t.Pid, out); err != nil {
			return memStats{}, err
		}
		log.Debugf("task %d: pagemap written after %v", t.Pid, time.Since(begin))
		logRuns(t.Pid, out)
		return memStats{written: out.written, parent: out.parent, took: time.Since(begin)}, nil
	}
	// A task the parasite would not read (a few MiB) is read and written
	// by a worker while the tracer goes on with the next tasks: they all
	// stay frozen until every job is in (waitMemory).
	if !incremental && dirtyBytes < parasiteFrom && d.opts.AfterTask == nil && dest.stream == nil && d.lazy == nil {
		p = nil
		d.memJobs.start(memJob{run: job, abandon: dest.abandon})
		return nil
	}
	ms, err := job()
	d.addMemStats(ms)
	return err
}

// memStats is what one task's pages job counted.
type memStats struct {
	written, parent uint64
	took            time.Duration
}

func (d *dumper) addMemStats(ms memStats) {
	d.stats.PagesWritten += ms.written
	d.stats.PagesSkippedParent += ms.parent
	d.stats.MemwriteTime += ms.took
}

// memJobs runs tasks' page jobs beside the tracer, memWorkers at a time,
// in the order they were started (each writes files of its own).
type memJobs struct {
	queue chan memJob
	done  chan struct{}
	mu    sync.Mutex
	stats memStats
	err   error
}

// memJob is one task's pages: run writes them, abandon lets go of what
// run would have used.
type memJob struct {
	run     func() (memStats, error)
	abandon func()
}

// errDumpFailed stops the page jobs not run yet of a dump that failed.
var errDumpFailed = errors.New("the dump failed")

func (m *memJobs) start(job memJob) {
	if m.queue == nil {
		m.queue, m.done = make(chan memJob, 1024), make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(memWorkers)
		for range memWorkers {
			go m.work(&wg)
		}
		go func() {
			wg.Wait()
			close(m.done)
		}()
	}
	m.queue <- job
}

// memWorkers is how many page jobs run at once.
const memWorkers = 2

func (m *memJobs) work(wg *sync.WaitGroup) {
	defer wg.Done()
	for job := range m.queue {
		m.mu.Lock()
		failed := m.err != nil
		m.mu.Unlock()
		if failed {
			job.abandon() // the dump fails anyway
			continue
		}
		ms, err := job.run()
		m.mu.Lock()
		m.stats.written += ms.written
		m.stats.parent += ms.parent
		m.stats.took += ms.took
		if err != nil && m.err == nil {
			m.err = err
		}
		m.mu.Unlock()
	}
}

// cancel makes the jobs not started yet be abandoned.
func (m *memJobs) cancel() {
	m.mu.Lock()
	if m.err == nil {
		m.err = errDumpFailed
	}
	m.mu.Unlock()
}

// wait waits for every job started and returns their counts and the first
// error.
func (m *memJobs) wait() (memStats, error) {
	if m.queue == nil {
		return memStats{}, nil
	}
	close(m.queue)
	<-m.done
	m.queue = nil
	return m.stats, m.err
}

// waitMemory waits for the page jobs and adds what they counted.
func (d *dumper) waitMemory() error {
	ms, err := d.memJobs.wait()
	d.addMemStats(ms)
	return err
}

// fds writes fdinfo-N.img for the task's fd table (once per shared table).
func (d *dumper) fds(t *ptrace.Task, filesID uint32) error {
	if d.fdTables[filesID] {
		return nil // a task sharing this fd table (CLONE_FILES) wrote it
	}
	d.fdTables[filesID] = true
	name := images.FdinfoFile(filesID)
	fds, err := files.ListFds(t.Pid)
	if err != nil {
		return err
	}
	w, err := d.dir.Create(name, images.KindFdinfo)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := d.files.Fds(t.Pid, fds, func(e *pb.FdinfoEntry) error { return w.WriteEntry(e) }); err != nil {
		return err
	}
	return w.Close()
}

func (d *dumper) fs(t *ptrace.Task, status *proc.Status) (*pb.FsEntry, error) {
	id := func(what string) (uint32, error) {
		link := fmt.Sprintf("/proc/%d/%s", t.Pid, what)
		p, err := os.Readlink(link)
		if err != nil {
			return 0, fmt.Errorf("task %d: %s: %w", t.Pid, what, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(link, &st); err != nil {
			return 0, fmt.Errorf("task %d: %s %s: %w", t.Pid, what, p, err)
		}
		return d.files.Path(fmt.Sprintf("task %d (%s) %s", t.Pid, d.files.Checker.Comm(t.Pid), pathWords[what]), link, p, &st, unix.O_RDONLY|unix.O_DIRECTORY)
	}
	cwd, err := id("cwd")
	if err != nil {
		return nil, err
	}
	root, err := id("root")
	if err != nil {
		return nil, err
	}
	fs := &pb.FsEntry{CwdId: proto.Uint32(cwd), RootId: proto.Uint32(root)}
	if status.HasUmask {
		fs.Umask = proto.Uint32(status.Umask)
	}
	return fs, nil
}

// pendingSignals records each thread's queued signals and the process's.
func pendingSignals(t *ptrace.Task, cores []*pb.CoreEntry) error {
	for i, te := range t.Threads {
		sigs, err := te.PendingSignals(false)
		if err != nil {
			return err
		}
		if len(sigs) > 0 {
			cores[i].ThreadCore.SignalsP = signalQueue(sigs)
		}
	}
	shared, err := t.Threads[0].PendingSignals(true)
	if err != nil {
		return err
	}
	if len(shared) > 0 {
		cores[0].Tc.SignalsS = signalQueue(shared)
	}
	return nil
}
