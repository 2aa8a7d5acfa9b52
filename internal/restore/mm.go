package restore

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/progress"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

const (
	prSetMM         = 35
	prSetMMMap      = 14
	prSetMMMapSize  = 15
	prSetTHPDisable = 41
)

// restoreMM rebuilds the task's address space: everything but the stub's
// own area goes, the vDSO block moves to where it was, every VMA of the image
// is mapped, pages are written, protections are set, then the mm fields.
func (rs *restorer) restoreMM(l *live) error {
	t, r := l.t, l.main
	now, err := proc.ReadMaps(r.pid)
	if err != nil {
		return err
	}
	kept := inheritedAreas(t, now)
	pagesID, entries, err := readPagemap(rs.plan.Dir, t.Pid)
	if err != nil {
		return err
	}
	if err := rs.lazyAreas(t, entries, kept); err != nil {
		return err
	}
	if err := rs.clearAddressSpace(r, now, kept); err != nil {
		return err
	}
	if err := rs.moveVDSO(t, r, now); err != nil {
		return err
	}
	fileFds := map[uint32]op{} // file id -> the op that gave the task its fd
	shmFds := map[uint64]op{}  // shmid -> the same, for shared anonymous memory
	defer func() {
		for _, fd := range fileFds {
			r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
		}
		for _, fd := range shmFds {
			r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
		}
	}()
	var writable []*pb.VmaEntry // mapped with PROT_WRITE added for the pages
	for _, v := range t.MM.GetVmas() {
		st := v.GetStatus()
		if st&images.VMAAreaAIORing != 0 {
			// The dumped ring's pages go here; restoreAIORings then
			// moves a new ring over it.
			if _, err := r.call(fmt.Sprintf("mmap AIO ring area %#x-%#x", v.GetStart(), v.GetEnd()), unix.SYS_MMAP, v.GetStart(), v.GetEnd()-v.GetStart(),
				unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED, ^uint64(0), 0); err != nil {
				return err
			}
			continue
		}
		if st&(images.VMAAreaVDSO|images.VMAAreaVVAR|images.VMAAreaVsyscall) != 0 || st&images.VMAAreaRegular == 0 {
			continue
		}
		prot := uint64(v.GetProt())
		flags := uint64(v.GetFlags()) | unix.MAP_FIXED
		fd := val(^uint64(0))
		off := uint64(0)
		switch {
		case st&(images.VMAFilePrivate|images.VMAFileShared) != 0:
			id := uint32(v.GetShmid())
			f, ok := fileFds[id]
			if !ok {
				var err error
				f, err = rs.openMapped(t, r, id, v)
				if err != nil {
					return err
				}
				fileFds[id] = f
			}
			fd, off = f.res(), v.GetPgoff()
			flags &^= unix.MAP_ANONYMOUS
		case st&images.VMAAnonShared != 0:
			// One object for every task that maps it: gockpt made it,
			// the task maps gockpt's file of it.
			id := v.GetShmid()
			f, ok := shmFds[id]
			if !ok {
				obj, err := rs.shmemFile(id)
				if err != nil {
					return fmt.Errorf("task %d VMA %#x-%#x: %w", t.Pid, v.GetStart(), v.GetEnd(), err)
				}
				if f, err = takeFd(r, int(obj.Fd())); err != nil {
					return err
				}
				shmFds[id] = f
			}
			fd, off = f.res(), v.GetPgoff()
			flags &^= unix.MAP_ANONYMOUS
		default:
			flags |= unix.MAP_ANONYMOUS
		}
		// Private areas with pages get PROT_WRITE until their pages are
		// in, but not executable ones: writable and executable at once is
		// what SELinux denies as execmem. Their pages go in through
		// /proc/PID/mem, which writes past protections as a debugger does.
		// An area without pages keeps its protection: a private mapping
		// once writable stays accounted (VmFlags "ac"), and one that
		// never was, a library's code or read-only data, must not be.
		if st&(images.VMAFileShared|images.VMAAnonShared) == 0 && prot&unix.PROT_WRITE == 0 && prot&unix.PROT_EXEC == 0 && holdsPages(entries, v) {
			prot |= unix.PROT_WRITE
			writable = append(writable, v)
		}
		if kept[cowKey{v.GetStart(), v.GetEnd()}] {
			// Inherited from the parent with the same flags and advice.
			if err := r.q(fmt.Sprintf("mprotect inherited VMA %#x-%#x", v.GetStart(), v.GetEnd()), unix.SYS_MPROTECT,
				v.GetStart(), v.GetEnd()-v.GetStart(), prot); err != nil {
				return err
			}
			continue
		}
		// MAP_FIXED: mapped at the address asked for, or an error.
		if _, err := r.qop(fmt.Sprintf("mmap VMA %#x-%#x", v.GetStart(), v.GetEnd()), unix.SYS_MMAP,
			val(v.GetStart()), val(v.GetEnd()-v.GetStart()), val(prot), val(flags), fd, val(off)); err != nil {
			return err
		}
		if m := v.GetMadv(); m != 0 {
			for adv := uint64(0); adv < 64; adv++ {
				if m&(1<<adv) != 0 {
					if err := r.q(fmt.Sprintf("madvise(%d) VMA %#x-%#x", adv, v.GetStart(), v.GetEnd()), unix.SYS_MADVISE,
						v.GetStart(), v.GetEnd()-v.GetStart(), adv); err != nil {
						return err
					}
				}
			}
		}
	}
	if err := removeInheritedGuards(t, r, kept); err != nil {
		return err
	}
	if err := dropUnsaved(r, kept, entries); err != nil {
		return err
	}
	// The pages go in from outside: every area must exist first.
	for _, fd := range fileFds {
		r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
	}
	for _, fd := range shmFds {
		r.qopMayFail("close", unix.SYS_CLOSE, fd.res())
	}
	clear(fileFds)
	clear(shmFds)
	if err := r.flush(); err != nil {
		return err
	}
	// A worker writes them while the tracer goes on with the task's other
	// state and other tasks; settle waits for it and finishes the mm.
	l.pages = rs.startPages(t, pagesID, entries, kept)
	l.mmRest = func() error {
		for _, v := range writable {
			if err := r.q(fmt.Sprintf("mprotect VMA %#x-%#x", v.GetStart(), v.GetEnd()), unix.SYS_MPROTECT,
				v.GetStart(), v.GetEnd()-v.GetStart(), uint64(v.GetProt())); err != nil {
				return err
			}
		}
		// AIO rings are read and written from outside: the list runs
		// first.
		if len(t.MM.GetAios()) > 0 {
			if err := r.flush(); err != nil {
				return err
			}
		}
		if err := restoreAIORings(t, r); err != nil {
			return err
		}
		if err := installGuards(t, r); err != nil {
			return err
		}
		return rs.setMMFields(t, r)
	}
	return nil
}

// holdsPages reports whether the pagemap (sorted by address) has pages
// for any part of the area.
func holdsPages(entries []pagemap.Entry, v *pb.VmaEntry) bool {
	i := sort.Search(len(entries), func(i int) bool { return entries[i].End() > v.GetStart() })
	for ; i < len(entries) && entries[i].Vaddr < v.GetEnd(); i++ {
		if entries[i].Flags&(pagemap.FlagPresent|pagemap.FlagParent) != 0 {
			return true
		}
	}
	return false
}

// clearAddressSpace unmaps everything the task inherited (the stub's stack,
// or its parent's memory) except the stub area and the vDSO block.
// Areas in kept stay: the task inherited them as it needs them.
func (rs *restorer) clearAddressSpace(r *remote, vmas []proc.VMA, kept map[cowKey]bool) error {
	for _, v := range vmas {
		if kept[cowKey{v.Start, v.End}] {
			continue
		}
		switch v.Kind {
		case proc.KindVDSO, proc.KindVVAR, proc.KindVVARVClock, proc.KindVSyscall:
			continue
		}
		if v.Start >= rs.area.start && v.End <= rs.area.end {
			continue
		}
		if err := r.q(fmt.Sprintf("munmap %#x-%#x (%s)", v.Start, v.End, v.Path), unix.SYS_MUNMAP, v.Start, v.End-v.Start); err != nil {
			return err
		}
	}
	return nil
}

// moveVDSO moves the running kernel's vvar and vDSO areas of the task to the
// addresses the image has for them, as one block with the same layout. They
// are parked inside the stub area first so that no move lands on another
// part of the block.
func (rs *restorer) moveVDSO(t *Task, r *remote, vmas []proc.VMA) error {
	var imgVvar, imgVdso *pb.VmaEntry
	for _, v := range t.MM.GetVmas() {
		if v.GetStatus()&images.VMAAreaVVAR != 0 {
			imgVvar = v
		}
		if v.GetStatus()&images.VMAAreaVDSO != 0 {
			imgVdso = v
		}
	}
	var cur []proc.VMA
	var vvarStart, vvarEnd uint64
	for _, v := range vmas {
		switch v.Kind {
		case proc.KindVVAR, proc.KindVVARVClock:
			if vvarStart == 0 || v.Start < vvarStart {
				vvarStart = v.Start
			}
			if v.End > vvarEnd {
				vvarEnd = v.End
			}
			cur = append(cur, v)
		case proc.KindVDSO:
			cur = append(cur, v)
		}
	}
	if imgVdso == nil {
		// The dumped task had no vDSO: drop ours.
		for _, v := range cur {
			if err := r.q("munmap vDSO", unix.SYS_MUNMAP, v.Start, v.End-v.Start); err != nil {
				return err
			}
		}
		return nil
	}
	target := func(v proc.VMA) (uint64, error) {
		if v.Kind == proc.KindVDSO {
			if v.Len() != imgVdso.GetEnd()-imgVdso.GetStart() {
				return 0, fmt.Errorf("task %d: this kernel's vDSO is %d bytes, the dumped one %d: restore on the kernel the dump was taken on", t.Pid, v.Len(), imgVdso.GetEnd()-imgVdso.GetStart())
			}
			return imgVdso.GetStart(), nil
		}
		if imgVvar == nil || vvarEnd-vvarStart != imgVvar.GetEnd()-imgVvar.GetStart() {
			return 0, fmt.Errorf("task %d: this kernel's vvar area differs in size from the dumped one: restore on the kernel the dump was taken on", t.Pid)
		}
		return imgVvar.GetStart() + (v.Start - vvarStart), nil
	}
	// A child of a restored task has them in place already.
	moved := false
	for _, v := range cur {
		to, err := target(v)
		if err != nil {
			return err
		}
		moved = moved || to != v.Start
	}
	if !moved {
		return nil
	}
	park := rs.area.park
	var parked []uint64
	for _, v := range cur {
		if err := r.q(fmt.Sprintf("mremap %s to the parking area", v.Path), unix.SYS_MREMAP, v.Start, v.Len(), v.Len(), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, park); err != nil {
			return err
		}
		parked = append(parked, park)
		park += v.Len()
	}
	for i, v := range cur {
		to, err := target(v)
		if err != nil {
			return err
		}
		if err := r.q(fmt.Sprintf("mremap %s to %#x", v.Path, to), unix.SYS_MREMAP, parked[i], v.Len(), v.Len(), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to); err != nil {
			return err
		}
	}
	// Injected syscalls found their instruction in the old vDSO position.
	r.te.Tracer().ForgetProcess(r.pid)
	return nil
}

// openMapped opens, inside the task, the file a VMA maps, after checking
// that it is still the file the dump saw.
func (rs *restorer) openMapped(t *Task, r *remote, id uint32, v *pb.VmaEntry) (op, error) {
	f := rs.plan.Files[id]
	if f.GetType() == pb.FdTypes_MEMFD {
		// A memfd: gockpt made it (once per inode), the task maps
		// gockpt's file of it.
		mf, err := rs.opener.Open(id)
		if err != nil {
			return 0, fmt.Errorf("task %d VMA %#x-%#x: %w", t.Pid, v.GetStart(), v.GetEnd(), err)
		}
		// Opened with the mode the VMA records (CRIU's file entry of a
		// mapped memfd may say another).
		flags := int(v.GetFdflags())
		if v.Fdflags == nil {
			flags = unix.O_RDONLY
		}
		f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", mf.Fd()), flags&unix.O_ACCMODE|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("task %d VMA %#x-%#x: reopen memfd: %w", t.Pid, v.GetStart(), v.GetEnd(), err)
		}
		r.afterRun(func() { f.Close() })
		return takeFd(r, int(f.Fd()))
	}
	reg := f.GetReg()
	if reg == nil {
		return 0, fmt.Errorf("task %d VMA %#x-%#x: file id %d is not a regular file in files.img", t.Pid, v.GetStart(), v.GetEnd(), id)
	}
	flags := uint64(v.GetFdflags())
	if v.Fdflags == nil {
		flags = unix.O_RDONLY
	}
	if rs.opener.Remapped(id) {
		// A deleted file: gockpt recreated it (or reached it through the
		// link dump made), the task maps gockpt's open file.
		f, err := rs.opener.Reopen(id, int(flags))
		if err != nil {
			return 0, fmt.Errorf("task %d VMA %#x-%#x: %w", t.Pid, v.GetStart(), v.GetEnd(), err)
		}
		r.afterRun(func() { f.Close() })
		return takeFd(r, int(f.Fd()))
	}
	if err := checkSameFile(reg); err != nil {
		return 0, fmt.Errorf("task %d VMA %#x-%#x: %w", t.Pid, v.GetStart(), v.GetEnd(), err)
	}
	return rs.openHost(r, "mapped file", reg.GetName(), int(flags))
}

// checkSameFile refuses a file that is gone or changed size since the dump:
// mapping it would give the task different code or data.
func checkSameFile(reg *pb.RegFileEntry) error {
	fi, err := os.Stat(reg.GetName())
	if err != nil {
		return fmt.Errorf("file %s is gone since the dump (%w): put it back to restore", reg.GetName(), err)
	}
	if reg.Size != nil && fi.Mode().IsRegular() && uint64(fi.Size()) != reg.GetSize() {
		return fmt.Errorf("file %s changed size since the dump (%d bytes, was %d): restore needs the file as it was", reg.GetName(), fi.Size(), reg.GetSize())
	}
	return nil
}

// readPagemap reads the task's pagemap image.
func readPagemap(d *images.Dir, pid int) (uint32, []pagemap.Entry, error) {
	f, err := os.Open(d.Join(images.PagemapFile(pid)))
	if err != nil {
		return 0, nil, fmt.Errorf("task %d: %w", pid, err)
	}
	defer f.Close()
	id, entries, err := pagemap.Parse(f, f.Name())
	if err != nil {
		return 0, nil, fmt.Errorf("task %d: %w", pid, err)
	}
	return id, entries, nil
}

// writePages copies the task's saved pages into it. pages-N.img is mapped
// read-only into gockpt and each run of pages goes from there straight into
// the task with process_vm_writev: one copy per page, from the page cache
// into place, in large batches, split between threads when there is much
// (writeSegs). Runs saved in a parent directory are read through the parent
// chain. Pages of inherited areas are written only where they differ from
// what the task has (writeChanged).
func (rs *restorer) writePages(t *Task, pagesID uint32, entries []pagemap.Entry, kept map[cowKey]bool, bufs *pageBufs) (restored uint64, err error) {
	d := rs.plan.Dir
	pages, err := os.Open(d.Join(images.PagesFile(pagesID)))
	if err != nil {
		return 0, fmt.Errorf("task %d: %w", t.Pid, err)
	}
	defer pages.Close()
	fi, err := pages.Stat()
	if err != nil {
		return 0, fmt.Errorf("task %d: %w", t.Pid, err)
	}
	var data []byte
	if fi.Size() > 0 {
		if data, err = unix.Mmap(int(pages.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return 0, fmt.Errorf("task %d: map %s: %w", t.Pid, pages.Name(), err)
		}
		defer unix.Munmap(data)
	}
	var parent *pagemap.Reader
	defer func() {
		if parent != nil {
			parent.Close()
		}
	}()
	var shared uint64 // pages left shared with the parent
	defer func() {
		if len(kept) > 0 {
			log.Debugf("task %d: %d pages of %d inherited areas left shared with the parent", t.Pid, shared, len(kept))
		}
	}()
	w := &pageWriter{pid: t.Pid, progress: rs.opts.Progress}
	defer w.close()
	lazyAreas := rs.lazyAreasOf(t.Pid)
	var off uint64 // in pages-N.img
	for _, e := range entries {
		if e.Flags&pagemap.FlagPresent == 0 && e.Flags&pagemap.FlagParent == 0 {
			continue
		}
		size := e.NrPages * pageSize
		if lazyPart(lazyAreas, e) {
			// The daemon puts these in place.
			if e.Flags&pagemap.FlagPresent != 0 {
				off += size
			}
			continue
		}
		if kernelArea(t, e) {
			// The running kernel's vDSO is in place: its dumped pages
			// are passed over.
			if e.Flags&pagemap.FlagPresent != 0 {
				off += size
			}
			continue
		}
		if e.Flags&pagemap.FlagPresent != 0 {
			if off+size > uint64(len(data)) {
				return 0, fmt.Errorf("task %d: %s ends at byte %d, the pages for %#x-%#x need %d", t.Pid, pages.Name(), len(data), e.Vaddr, e.End(), off+size)
			}
			src := data[off : off+size]
			off += size
			if len(kept) > 0 && inKept(kept, e.Vaddr, size) {
				written, err := w.writeChanged(e.Vaddr, src, bufs.cur())
				if err != nil {
					return 0, err
				}
				shared += e.NrPages - written
				restored += written
				continue
			}
			w.segs = append(w.segs, ptrace.MemSeg{Addr: e.Vaddr, Data: src})
			restored += e.NrPages
			continue
		}
		// From the parent images: read, then written at once (the buffer
		// is used again).
		if parent == nil {
			if parent, err = pagemap.Open(d, t.Pid); err != nil {
				return 0, fmt.Errorf("task %d: %w", t.Pid, err)
			}
		}
		buf := bufs.page()
		for addr := e.Vaddr; addr < e.End(); {
			n := min(e.End()-addr, uint64(len(buf)))
			chunk := buf[:n]
			if err := parent.ReadAt(chunk, addr); err != nil {
				return 0, fmt.Errorf("task %d: pages at %#x from the parent images: %w", t.Pid, addr, err)
			}
			written := n / pageSize
			if len(kept) > 0 && inKept(kept, addr, n) {
				if written, err = w.writeChanged(addr, chunk, bufs.cur()); err != nil {
					return 0, err
				}
				shared += n/pageSize - written
			} else if err := w.writeSegs([]ptrace.MemSeg{{Addr: addr, Data: chunk}}, false); err != nil {
				return 0, err
			}
			restored += written
			addr += n
		}
	}
	return restored, w.writeSegs(w.segs, true)
}

// pageBufSize is the size of the buffers writePages reads pages into when
// they do not come straight from a mapped pages file.
const pageBufSize = 4 << 20

// pageBufs are one page writer's buffers, made when first needed and kept
// for the next task (pageBufPool).
type pageBufs struct{ pbuf, cbuf []byte }

// page is the buffer for pages read from parent images.
func (b *pageBufs) page() []byte {
	if b.pbuf == nil {
		b.pbuf = make([]byte, pageBufSize)
	}
	return b.pbuf
}

// cur is the buffer for what an inherited area holds now.
func (b *pageBufs) cur() []byte {
	if b.cbuf == nil {
		b.cbuf = make([]byte, pageBufSize)
	}
	return b.cbuf
}

type pageWriter struct {
	pid  int
	segs []ptrace.MemSeg
	mem  *os.File // /proc/PID/mem, opened when needed
	// progress hears the pages done (from several threads at once).
	progress progress.Sink
}

func (w *pageWriter) close() {
	if w.mem != nil {
		w.mem.Close()
	}
}

func (w *pageWriter) procMem() (*os.File, error) {
	if w.mem == nil {
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", w.pid), os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", w.pid, err)
		}
		w.mem = f
	}
	return w.mem, nil
}

// Batches of process_vm_writev: at most iovMax pieces and writeBatch bytes
// each; with more than parallelFrom bytes in all, the batches are shared
// out between threads.
const (
	iovMax       = 1024
	writeBatch   = 16 << 20
	parallelFrom = 32 << 20
)

// writeSegs writes the segments into the task. mapped says they are
// pieces of the mapped pages file: each batch's pages are let go of once
// written, so that gockpt's RSS holds at most a batch per thread of the
// file, not all of it (the page cache keeps them).
func (w *pageWriter) writeSegs(segs []ptrace.MemSeg, mapped bool) error {
	var batches [][]ptrace.MemSeg
	var cur []ptrace.MemSeg
	var curBytes, total int
	for _, s := range segs {
		for len(s.Data) > 0 {
			n := min(len(s.Data), writeBatch-curBytes)
			cur = append(cur, ptrace.MemSeg{Addr: s.Addr, Data: s.Data[:n]})
			curBytes += n
			total += n
			s = ptrace.MemSeg{Addr: s.Addr + uint64(n), Data: s.Data[n:]}
			if curBytes == writeBatch || len(cur) == iovMax {
				batches = append(batches, cur)
				cur, curBytes = nil, 0
			}
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	workers := min(runtime.GOMAXPROCS(0), len(batches))
	if total < parallelFrom || workers < 2 {
		for _, b := range batches {
			if err := w.writeBatch(b, mapped); err != nil {
				return err
			}
		}
		return nil
	}
	// Each worker takes the next batch; the /proc/PID/mem fallback is
	// opened first, as the workers share it (pwrite needs no lock).
	if _, err := w.procMem(); err != nil {
		return err
	}
	var next atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) {
					errs <- nil
					return
				}
				if err := w.writeBatch(batches[i], mapped); err != nil {
					next.Store(int64(len(batches)))
					errs <- err
					return
				}
			}
		}()
	}
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// writeBatch writes one batch with process_vm_writev; what that cannot
// write (an executable area without PROT_WRITE) goes through
// /proc/PID/mem, which writes past protections as a debugger does.
func (w *pageWriter) writeBatch(b []ptrace.MemSeg, mapped bool) error {
	if mapped {
		defer func() {
			for _, s := range b {
				// Whole pages of a shared file mapping: MADV_DONTNEED
				// drops our page table entries, not the file's data.
				unix.Madvise(s.Data, unix.MADV_DONTNEED)
			}
		}()
	}
	n, err := ptrace.WriteMemSegsN(w.pid, b)
	if err == nil {
		w.progress.Add(uint64(n) / pageSize)
		return nil
	}
	if !errors.Is(err, unix.EFAULT) {
		return err
	}
	for _, s := range b {
		if n >= len(s.Data) {
			n -= len(s.Data)
			continue
		}
		mem, err := w.procMem()
		if err != nil {
			return err
		}
		if _, err := mem.WriteAt(s.Data[n:], int64(s.Addr)+int64(n)); err != nil {
			return fmt.Errorf("task %d: write pages at %#x: %w", w.pid, s.Addr+uint64(n), err)
		}
		n = 0
	}
	for _, s := range b {
		w.progress.Add(uint64(len(s.Data)) / pageSize)
	}
	return nil
}

// writeChanged writes the pages of chunk that differ from what the task
// holds at addr, and returns how many it wrote.
func (w *pageWriter) writeChanged(addr uint64, chunk, cur []byte) (uint64, error) {
	mem, err := w.procMem()
	if err != nil {
		return 0, err
	}
	var written uint64
	for len(chunk) > 0 {
		n := min(len(chunk), len(cur))
		k, err := writeChanged(mem, w.pid, addr, chunk[:n], cur)
		written += k
		if err != nil {
			if !errors.Is(err, unix.EFAULT) {
				return written, err
			}
			if _, err := mem.WriteAt(chunk[:n], int64(addr)); err != nil {
				return written, fmt.Errorf("task %d: write pages at %#x: %w", w.pid, addr, err)
			}
			written += uint64(n)/pageSize - k
		}
		w.progress.Add(uint64(n) / pageSize)
		chunk, addr = chunk[n:], addr+uint64(n)
	}
	return written, nil
}

// setMMFields sets code/data/brk/stack/arg/env boundaries, auxv and the exe
// link in one PR_SET_MM_MAP call: the single PR_SET_MM_* calls need
// CAP_SYS_RESOURCE, PR_SET_MM_MAP does not.
func (rs *restorer) setMMFields(t *Task, r *remote) error {
	mm := t.MM
	exe := rs.plan.Files[mm.GetExeFileId()].GetReg()
	if exe == nil {
		return fmt.Errorf("task %d: exe file id %d is not in files.img", t.Pid, mm.GetExeFileId())
	}
	if err := checkSameFile(exe); err != nil {
		return fmt.Errorf("task %d: executable: %w", t.Pid, err)
	}
	// A child cloned from its restored parent has the right exe already;
	// the kernel refuses to set the exe of an mm that maps it (EBUSY), so
	// exe_fd -1 keeps it.
	exeFd := uint64(0xffffffff)
	var cur, want unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/exe", t.Pid), &cur) != nil || unix.Stat(exe.GetName(), &want) != nil ||
		cur.Dev != want.Dev || cur.Ino != want.Ino {
		o, err := rs.openHost(r, "executable", exe.GetName(), unix.O_RDONLY)
		if err != nil {
			return err
		}
		// The fd goes into struct prctl_mm_map: its number is needed.
		if exeFd, err = r.value(o); err != nil {
			return err
		}
		defer r.queueMayFail("close", unix.SYS_CLOSE, exeFd)
	}
	auxv := mm.GetMmSavedAuxv()
	auxvAddr, err := r.u64s(auxv...)
	if err != nil {
		return err
	}
	// struct prctl_mm_map: 11 u64 fields, u64 auxv pointer, u32 auxv_size,
	// u32 exe_fd.
	m, err := r.u64s(mm.GetMmStartCode(), mm.GetMmEndCode(), mm.GetMmStartData(), mm.GetMmEndData(),
		mm.GetMmStartBrk(), mm.GetMmBrk(), mm.GetMmStartStack(), mm.GetMmArgStart(), mm.GetMmArgEnd(),
		mm.GetMmEnvStart(), mm.GetMmEnvEnd(), auxvAddr, uint64(len(auxv)*8)|exeFd<<32)
	if err != nil {
		return err
	}
	if err := r.q("prctl(PR_SET_MM, PR_SET_MM_MAP)", unix.SYS_PRCTL, prSetMM, prSetMMMap, m, 13*8, 0); err != nil {
		return err
	}
	// Set either way: a child is made from its restored parent, whose
	// setting it inherits.
	if mm.ThpDisabled != nil {
		v := uint64(0)
		if mm.GetThpDisabled() {
			v = 1
		}
		if err := r.q(fmt.Sprintf("prctl(PR_SET_THP_DISABLE, %d)", v), unix.SYS_PRCTL, prSetTHPDisable, v, 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}
