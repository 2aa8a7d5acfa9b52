package dump

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/pageserver"
	"github.com/gockpt/gockpt/internal/proc"
)

// Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, or a MAP_SHARED
// mapping of /dev/zero) is one shmem object however many tasks map it:
// each VMA names it by its inode (shmid, with VMA_ANON_SHARED), and its
// pages are written once, from the object itself, as CRIU writes them:
// pagemap-shmem-SHMID.img lists the runs by their offset in the object,
// pages-N.img holds them.

// sharedAnonArea tells an area of shared anonymous memory: maps shows the
// shmem file the kernel made for it as a deleted /dev/zero.
func sharedAnonArea(a *proc.SmapsVMA) bool {
	return a.Kind == proc.KindFile && a.Shared() && a.Major == 0 && a.Minor == 1 && a.Path == "/dev/zero" && a.Deleted && !a.Flags.HugeTLB()
}

// shmemObject is one shared anonymous object and a mapping of it to read
// it through.
type shmemObject struct {
	shmid      uint64
	pid        int
	start, end uint64
}

// addShmem remembers the objects task pid maps, once each.
func (d *dumper) addShmem(pid int, plans []vmaPlan) {
	for _, p := range plans {
		if !p.shmem {
			continue
		}
		id := p.entry.GetShmid()
		if d.shmem == nil {
			d.shmem = map[uint64]*shmemObject{}
		}
		if d.shmem[id] == nil {
			d.shmem[id] = &shmemObject{shmid: id, pid: pid, start: p.entry.GetStart(), end: p.entry.GetEnd()}
		}
	}
}

// writeShmem writes every shared anonymous object's pages: the runs that
// hold data (SEEK_DATA), read from the object through a task's
// /proc/PID/map_files link while the tree is frozen.
func (d *dumper) writeShmem() error {
	ids := make([]uint64, 0, len(d.shmem))
	for id := range d.shmem {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := d.writeOneShmem(d.shmem[id]); err != nil {
			return err
		}
	}
	return nil
}

func (d *dumper) writeOneShmem(o *shmemObject) error {
	where := fmt.Sprintf("task %d VMA %#x-%#x: shared anonymous memory (shmid %d)", o.pid, o.start, o.end, o.shmid)
	var f *os.File
	err := lsm.WithoutAuditedCheckpointRestore(func() (err error) {
		f, err = os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", o.pid, o.start, o.end))
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	size := (uint64(st.Size) + mem.PageSize - 1) &^ (mem.PageSize - 1)
	dest, err := d.openPages(pageserver.Shmem(o.shmid), false)
	if err != nil {
		return err
	}
	defer dest.abandon()
	pages := dest.writer()
	var entries []pagemap.Entry
	buf := make([]byte, 1<<20)
	for off := uint64(0); off < size; {
		data, err := unix.Seek(int(f.Fd()), int64(off), unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return fmt.Errorf("%s: SEEK_DATA at %#x: %w", where, off, err)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("%s: SEEK_HOLE at %#x: %w", where, data, err)
		}
		lo := uint64(data) &^ (mem.PageSize - 1)
		hi := min((uint64(hole)+mem.PageSize-1)&^(mem.PageSize-1), size)
		if dest.stream != nil && hi > lo {
			dest.stream.Add(pagemap.Entry{Vaddr: lo, NrPages: (hi - lo) / mem.PageSize, Flags: pagemap.FlagPresent})
		}
		for at := lo; at < hi; {
			n := min(uint64(len(buf)), hi-at)
			if _, err := f.ReadAt(buf[:n], int64(at)); err != nil {
				return fmt.Errorf("%s: read %#x-%#x: %w", where, at, at+n, err)
			}
			if _, err := pages.Write(buf[:n]); err != nil {
				return err
			}
			at += n
		}
		if hi > lo {
			if k := len(entries); k > 0 && entries[k-1].End() == lo {
				entries[k-1].NrPages += (hi - lo) / mem.PageSize
			} else {
				entries = append(entries, pagemap.Entry{Vaddr: lo, NrPages: (hi - lo) / mem.PageSize, Flags: pagemap.FlagPresent})
			}
			d.stats.PagesWritten += (hi - lo) / mem.PageSize
		}
		off = hi
	}
	if dest.stream != nil {
		return dest.stream.Close()
	}
	if err := dest.f.Close(); err != nil {
		return err
	}
	return pagemap.WriteNamed(d.dir, images.ShmemPagemapFile(o.shmid), dest.id, entries)
}
