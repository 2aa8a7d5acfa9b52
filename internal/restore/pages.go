package restore

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/log"
)

// Page writing runs beside the tracer. Once a task's areas exist, a worker
// goroutine writes its pages (process_vm_writev needs no tracer) while the
// tracer thread restores the task's fs, files and state and creates the
// next tasks. A task is settled, its pages waited for and its mm finished
// (protections, AIO rings, guard pages, mm fields), before anything can
// see its memory: before a child is cloned from it (the child copies it),
// and before pass 2.

// pageJob is one task's pages being written.
type pageJob struct {
	done     chan struct{}
	restored uint64
	err      error
}

// pageWorkers is how many tasks' pages are written at once: the tracer
// thread keeps one CPU.
func pageWorkers() int { return max(1, runtime.GOMAXPROCS(0)-1) }

// startPages starts writing task t's pages and returns the job.
func (rs *restorer) startPages(t *Task, pagesID uint32, entries []pagemap.Entry, kept map[cowKey]bool) *pageJob {
	if rs.pageSem == nil {
		rs.pageSem = make(chan struct{}, pageWorkers())
	}
	j := &pageJob{done: make(chan struct{})}
	rs.pageJobs.Add(1)
	go func() {
		defer rs.pageJobs.Done()
		defer close(j.done)
		rs.pageSem <- struct{}{}
		defer func() { <-rs.pageSem }()
		if rs.aborted.Load() {
			j.err = fmt.Errorf("task %d: restore given up", t.Pid)
			return
		}
		bufs, _ := rs.bufPool.Get().(*pageBufs)
		if bufs == nil {
			bufs = &pageBufs{}
		}
		defer rs.bufPool.Put(bufs)
		j.restored, j.err = rs.writePages(t, pagesID, entries, kept, bufs)
	}()
	return j
}

// settle waits for task l's pages and finishes its mm; a task already
// settled is left as it is. With queue set, what finishes the mm may stay
// queued on l.main, for its next list.
func (rs *restorer) settle(l *live, queue bool) error {
	job, rest := l.pages, l.mmRest
	if job == nil && rest == nil {
		return nil
	}
	l.pages, l.mmRest = nil, nil
	if job != nil {
		<-job.done
		if job.err != nil {
			return fmt.Errorf("task %d: memory: %w", l.t.Pid, job.err)
		}
		rs.stats.PagesRestored += job.restored
	}
	r := l.main
	r.reset()
	r.stage = "memory"
	err := rest()
	r.stage = ""
	if err == nil && !queue {
		err = r.flush()
	}
	if err != nil {
		return stageErr(l.t.Pid, "memory", err)
	}
	log.Debugf("task %d: pages written, mm finished", l.t.Pid)
	return nil
}

// settleAll settles every task, in the order they were made, leaving the
// last syscalls of each queued for its second pass.
func (rs *restorer) settleAll() error {
	for _, l := range rs.tasks {
		if err := rs.settle(l, true); err != nil {
			return err
		}
	}
	return nil
}

// abandonPages makes the page writers not started yet give up and waits
// for those running: a failed restore leaves none behind.
func (rs *restorer) abandonPages() {
	rs.aborted.Store(true)
	rs.pageJobs.Wait()
}

// pageState is the restorer's part for page writing.
type pageState struct {
	pageSem  chan struct{}
	pageJobs sync.WaitGroup
	bufPool  sync.Pool
	aborted  atomic.Bool
}
