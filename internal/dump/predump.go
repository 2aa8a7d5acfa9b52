package dump

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/pageserver"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// preDumpModeRead is CRIU's PRE_DUMP_READ: pages were read with
// process_vm_readv, not spliced.
const preDumpModeRead = 2

// preTask is one task of a pre-dump between the scan (tree frozen) and
// the copy (tree running).
type preTask struct {
	pid   int
	plans []vmaPlan
	tt    *taskTrack
	runs  []run
}

// PreDump saves the memory of the tree rooted at o.Pid and lets it run on:
// pagemap and pages images plus what the next iteration needs to chain
// (TrackFile). The tree is frozen only while its areas are scanned and the
// trackers re-armed; pages are copied after it runs again. That is safe:
// whatever the tree writes after the re-arm is dirty in the next iteration,
// which overwrites it.
func PreDump(o Options) (*Stats, error) {
	d, err := newDumper(o, true)
	if err != nil {
		return nil, err
	}
	defer d.files.Close()
	defer d.abortPageServer()
	if d.inc, err = d.setupIncremental(true); err != nil {
		return nil, err
	}
	if d.inc == nil {
		// Neither --track-mem nor a parent: a full copy of memory.
		d.inc = &incremental{backend: BackendHashes, preDump: true}
	}
	defer d.inc.close()
	if err := d.startWatchdog(); err != nil {
		d.inc.abort()
		return nil, err
	}
	defer d.watchdog.Close()

	tracer := ptrace.NewTracer()
	// A task that will not stop (a parent in vfork, uninterruptible
	// sleep) is refused after --timeout, not waited for.
	tracer.SetStopTimeout(o.Timeout)
	defer tracer.Close()
	frozenAt, err := d.freeze(tracer)
	if err != nil {
		return nil, err
	}
	if o.Timeout > 0 {
		timer := time.AfterFunc(o.Timeout, func() { d.timedOut.Store(true) })
		defer timer.Stop()
	}
	tasks, err := d.preScan()
	if err != nil {
		d.cleanup()
		return nil, err
	}
	// Let the tree go; from here on nothing can harm it.
	if err := d.detachAll(false); err != nil {
		log.Warnf("letting the tree run: %v", err)
	}
	d.stats.FrozenTime = time.Since(frozenAt)
	log.Infof("pre-dump: tree frozen for %v", d.stats.FrozenTime)

	if err = d.preWrite(tasks); err == nil {
		err = d.closePageServer()
	}
	if err != nil {
		d.inc.abort()
		return nil, err
	}
	gen, err := d.inc.commit(true)
	if err != nil {
		return nil, err
	}
	st := &trackState{PreDump: true, Backend: d.inc.backend, Generation: gen, KeeperAddr: d.inc.keeperAddr, KeeperPid: d.inc.keeperPid, Tasks: d.inc.armed}
	if !o.TrackMem {
		st.Generation, st.Tasks = "", nil
	}
	if err := writeTrackState(d.dir, st); err != nil {
		return nil, err
	}
	if err := d.seal(preDumpModeRead); err != nil {
		return nil, err
	}
	return d.stats, nil
}

// preScan runs with the tree frozen: per task, its areas, the tracker's
// verdict on each page, and the trackers re-armed.
func (d *dumper) preScan() ([]*preTask, error) {
	var out []*preTask
	for _, t := range d.tree.Tasks() {
		if err := d.checkTimeout(); err != nil {
			return out, err
		}
		st, err := proc.ReadStat(t.Pid)
		if err != nil {
			return out, fmt.Errorf("task %d: %w", t.Pid, err)
		}
		// The tree's shape, for image tools (restore refuses a pre-dump).
		ppid := 0
		if t.Parent != nil {
			ppid = t.Parent.Pid
		}
		pe := &pb.PstreeEntry{Pid: proto.Uint32(uint32(t.Pid)), Ppid: proto.Uint32(uint32(ppid)),
			Pgid: proto.Uint32(uint32(st.Pgrp)), Sid: proto.Uint32(uint32(st.Session))}
		for _, te := range t.Threads {
			pe.Threads = append(pe.Threads, uint32(te.Tid))
		}
		if t.Zombie {
			pe.Threads = []uint32{uint32(t.Pid)}
		}
		d.pstree = append(d.pstree, pe)
		if t.Zombie {
			continue
		}
		d.stats.Tasks++
		d.stats.Threads += len(t.Threads)
		plans, err := collectVMAs(t.Pid, d.files, nil)
		if err != nil {
			return out, err
		}
		tt, err := d.inc.taskTrack(t.Pid, st.StartTime, true)
		if err != nil {
			return out, err
		}
		pt := &preTask{pid: t.Pid, plans: plans, tt: tt}
		out = append(out, pt)
		if d.opts.TrackMem && d.inc.backend == BackendUffdWP {
			u := d.inc.uffdFor(t, st.StartTime, d.watchdog)
			if u != nil && staleUffd(u, plans) {
				// The task exec'd: same PID and start time, but the
				// tracker watched the address space it left.
				log.Infof("task %d has a new address space since the last pre-dump (exec): its pages are all dirty, and a new tracker is armed", t.Pid)
				d.inc.dropUffd(t.Pid)
				tt.prev = nil
				u = d.inc.uffdFor(t, st.StartTime, d.watchdog)
			}
			tt.tracker = mem.NoTracker{Backend: string(BackendUffdWP)}
			if u != nil {
				tt.tracker = mem.UffdTracker{U: u}
			}
			if u == nil {
				tt.prev = nil
			}
		}
		runs, scanned, err := pageRuns(t.Pid, plans, tt)
		if err != nil {
			return out, err
		}
		pt.runs = runs
		d.stats.PagesScanned += scanned
		d.opts.Progress.AddTotal(dirtyPages(runs))
		if !d.opts.TrackMem {
			continue
		}
		var areas []mem.ArmArea
		for _, p := range plans {
			if !p.dumpPages {
				continue
			}
			a := mem.ArmArea{Area: p.area(), Trusted: tt.trusted(p.entry.GetStart(), p.entry.GetEnd())}
			for _, r := range runs {
				if r.vma == a.Start {
					a.Runs = append(a.Runs, mem.Run{Range: r.Range, Dirty: r.dirty})
				}
			}
			areas = append(areas, a)
		}
		armed, err := tt.tracker.Arm(t.Pid, areas)
		if err != nil {
			return out, err
		}
		if _, none := tt.tracker.(mem.NoTracker); none {
			continue
		}
		rec := trackedTask{Pid: t.Pid, StartTime: st.StartTime}
		for _, a := range armed {
			rec.VMAs = append(rec.VMAs, [2]uint64{a.Start, a.End})
		}
		d.inc.armed = append(d.inc.armed, rec)
	}
	return out, nil
}

// preWrite copies the pages with the tree running and writes the images.
func (d *dumper) preWrite(tasks []*preTask) error {
	begin := time.Now()
	for _, pt := range tasks {
		dest, err := d.openPages(pageserver.Task(pt.pid), pt.tt != nil && pt.tt.parent != nil)
		if err != nil {
			return err
		}
		vm := newVMReader(pt.pid)
		out := &pagemapOut{stream: dest.stream}
		if d.inc.backend == BackendHashes {
			hs := newHashWriter()
			err = hashRuns(vm, pt.runs, pt.tt.parentHashes, out, hs, dest.writer(), true)
			d.opts.Progress.Add(dirtyPages(pt.runs))
			if err == nil {
				err = hs.write(d.dir, pt.pid)
			}
		} else {
			var dirty []mem.Range
			for _, r := range pt.runs {
				out.add(r.Range, r.vma, !r.dirty)
				if r.dirty {
					dirty = append(dirty, r.Range)
				}
			}
			err = vm.copyRanges(dirty, d.counted(dest.writer()), true)
		}
		if vm.vanished > 0 {
			log.Infof("task %d: %d pages went away before they were read; the next iteration dumps their areas again", pt.pid, vm.vanished)
		}
		vm.close()
		if err == nil {
			err = dest.finish(d, pt.pid, out)
		}
		dest.abandon()
		if err != nil {
			return fmt.Errorf("task %d: %w", pt.pid, err)
		}
		d.stats.PagesWritten += out.written
		d.stats.PagesSkippedParent += out.parent
		logRuns(pt.pid, out)
	}
	d.stats.MemwriteTime = time.Since(begin)
	if err := d.writePstree(); err != nil {
		return err
	}
	return d.writeStats()
}
