package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// PageReader chooses how dump reads memory.
type PageReader int

const (
	// ReadByParasite has the parasite vmsplice pages into a pipe that
	// gockpt splices into the pages file: one copy. The default: measured
	// faster (make bench).
	ReadByParasite PageReader = iota
	// ReadByVM copies pages with process_vm_readv into a buffer, then
	// writes it: two copies, no parasite needed.
	ReadByVM
)

// copyPages writes ranges (in order, all inside plans' VMAs) to f. Pages
// the task cannot read itself (PROT_NONE areas with data) always go
// through the tracer's view of its memory.
func (d *dumper) copyPages(pid int, plans []vmaPlan, ranges []mem.Range, p *parasite.Parasite, dest pageDest) error {
	vm := newVMReader(pid)
	defer vm.close()
	if dest.stream != nil {
		// One stream, in order: the socket is the bottleneck, not the
		// second copy.
		return vm.copyRanges(ranges, d.counted(dest.stream), false)
	}
	f := dest.f
	var total uint64
	for _, r := range ranges {
		total += r.Len
	}
	// A few MiB are read faster with process_vm_readv than through a
	// round trip with the parasite (its pipe and request cost more than
	// the second copy saves).
	if d.opts.PageReader == ReadByVM || p == nil || total < parasiteFrom {
		return vm.copyRanges(ranges, d.counted(f), false)
	}
	// A big task: the parasite's pipe feeds one copy on one CPU; the last
	// third goes with process_vm_readv (two copies) on another, written
	// at its place in the file.
	if total >= splitFrom && runtime.GOMAXPROCS(0) > 1 && d.opts.PageReader == ReadByParasite {
		at := (total - total/3) &^ (mem.PageSize - 1)
		head, tail := splitRanges(ranges, at)
		errc := make(chan error, 1)
		go func() {
			vm := newVMReader(pid)
			defer vm.close()
			errc <- vm.copyRanges(tail, d.counted(io.NewOffsetWriter(f, int64(at))), false)
		}()
		err := d.copyViaParasite(plans, head, p, f, vm)
		if terr := <-errc; err == nil {
			err = terr
		}
		return err
	}
	return d.copyViaParasite(plans, ranges, p, f, vm)
}

// splitFrom is the least memory of a task that dump reads two ways at once.
const splitFrom = 64 << 20

// splitRanges cuts ranges after their first n bytes.
func splitRanges(ranges []mem.Range, n uint64) (head, tail []mem.Range) {
	for i, r := range ranges {
		if n >= r.Len {
			n -= r.Len
			continue
		}
		if head = append(head, ranges[:i]...); n > 0 {
			head = append(head, mem.Range{Start: r.Start, Len: n})
		}
		tail = append(append(tail, mem.Range{Start: r.Start + n, Len: r.Len - n}), ranges[i+1:]...)
		return head, tail
	}
	return ranges, nil
}

// copyViaParasite writes ranges to f at its position: through the
// parasite's pipe, or the tracer's view for what the task cannot read.
func (d *dumper) copyViaParasite(plans []vmaPlan, ranges []mem.Range, p *parasite.Parasite, f *os.File, vm *vmReader) error {
	// The parasite reads what the task can read, but not the vDSO: the
	// tracer's reader hides gockpt's parking code in it.
	readable := func(addr uint64) bool {
		for _, pl := range plans {
			if addr >= pl.entry.GetStart() && addr < pl.entry.GetEnd() {
				return pl.entry.GetProt()&unix.PROT_READ != 0 && !pl.vdso
			}
		}
		return false
	}
	for len(ranges) > 0 {
		r := readable(ranges[0].Start)
		n := 1
		for n < len(ranges) && readable(ranges[n].Start) == r {
			n++
		}
		if r {
			prs := make([]parasite.Range, n)
			for i, rg := range ranges[:n] {
				prs[i] = parasite.Range{Addr: rg.Start, Len: rg.Len}
			}
			for _, b := range d.progressBatches(prs) {
				if _, err := p.DumpPages(b, f); err != nil {
					return err
				}
				d.opts.Progress.Add(parasitePages(b))
			}
		} else if err := vm.copyRanges(ranges[:n], d.counted(f), false); err != nil {
			return err
		}
		ranges = ranges[n:]
	}
	return nil
}

// parasiteFrom is the least memory of a task the parasite reads.
const parasiteFrom = 8 << 20

// pageChunk is how much memory one process_vm_readv call moves: big enough
// to amortise the syscall, small enough to stay in cache-friendly territory.
const pageChunk = 4 << 20

// maxIovecs is the kernel's IOV_MAX for one process_vm_readv call.
const maxIovecs = 1024

// vmReader copies pages of a task into a writer with process_vm_readv. Pages
// it may not read that way (PROT_NONE areas holding data) are read through
// /proc/PID/mem, which the kernel lets a tracer read regardless of protection.
// gockpt's parking code in the task's vDSO reads as the zero padding it
// replaced: the images hold the vDSO as the kernel made it.
type vmReader struct {
	pid int
	// parking is where gockpt's parking code is in the task's vDSO, 0
	// when it is not there.
	parking uint64
	buf     []byte
	memFd   *os.File
	local   []unix.Iovec
	remote  []unix.RemoteIovec
	// vanished counts pages a tolerant read found gone.
	vanished int
}

// chunkPool keeps pageChunk buffers between tasks: making (and zeroing)
// 4 MiB per task costs more than reading a small task's pages.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, pageChunk); return &b }}

func newVMReader(pid int) *vmReader {
	r := &vmReader{pid: pid, buf: *chunkPool.Get().(*[]byte)}
	if addr, there, err := ptrace.ParkingAddr(pid); err == nil && there {
		r.parking = addr
	}
	return r
}

// hideParking zeroes the parking code where data, read at addr, holds it.
func (r *vmReader) hideParking(addr uint64, data []byte) {
	if r.parking == 0 {
		return
	}
	lo := max(r.parking, addr)
	hi := min(r.parking+ptrace.ParkingCodeLen, addr+uint64(len(data)))
	if lo < hi {
		clear(data[lo-addr : hi-addr])
	}
}

func (r *vmReader) close() {
	if r.memFd != nil {
		r.memFd.Close()
	}
	if r.buf != nil {
		b := r.buf
		chunkPool.Put(&b)
		r.buf = nil
	}
}

// copyRanges writes the content of ranges, in order, to w.
func (r *vmReader) copyRanges(ranges []mem.Range, w io.Writer, tolerant bool) error {
	return r.each(ranges, tolerant, func(_ uint64, data []byte) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write pages: %w", err)
		}
		return nil
	})
}

// each reads ranges in order, in chunks of whole pages, and hands each chunk
// with its address to fn. A tolerant reader (the task runs on, as after a
// pre-dump let it go) reads pages whose area vanished meanwhile as zeros:
// the next iteration finds that area changed and dumps it again.
func (r *vmReader) each(ranges []mem.Range, tolerant bool, fn func(addr uint64, data []byte) error) error {
	fill := 0
	r.remote = r.remote[:0]
	flush := func() error {
		if fill == 0 {
			return nil
		}
		if err := r.read(fill, tolerant); err != nil {
			return err
		}
		off := 0
		// Hand out the chunk per contiguous remote piece.
		for i := 0; i < len(r.remote); {
			base, n := uint64(r.remote[i].Base), r.remote[i].Len
			j := i + 1
			for j < len(r.remote) && uint64(r.remote[j].Base) == base+uint64(n) {
				n += r.remote[j].Len
				j++
			}
			r.hideParking(base, r.buf[off:off+n])
			if err := fn(base, r.buf[off:off+n]); err != nil {
				return err
			}
			off += n
			i = j
		}
		fill = 0
		r.remote = r.remote[:0]
		return nil
	}
	for _, rg := range ranges {
		for addr, end := rg.Start, rg.End(); addr < end; {
			n := end - addr
			if room := uint64(len(r.buf) - fill); n > room {
				n = room
			}
			r.remote = append(r.remote, unix.RemoteIovec{Base: uintptr(addr), Len: int(n)})
			fill += int(n)
			addr += n
			if fill == len(r.buf) || len(r.remote) == maxIovecs {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// read fills r.buf[:fill] from r.remote.
func (r *vmReader) read(fill int, tolerant bool) error {
	r.local = append(r.local[:0], unix.Iovec{Base: &r.buf[0]})
	r.local[0].SetLen(fill)
	n, err := unix.ProcessVMReadv(r.pid, r.local, r.remote, 0)
	if err == nil && n == fill {
		return nil
	}
	if err != nil && !errors.Is(err, unix.EFAULT) && !tolerant {
		return fmt.Errorf("task %d: process_vm_readv: %w", r.pid, err)
	}
	// Part of the batch is not readable this way: read it all via
	// /proc/PID/mem, one remote piece at a time.
	if r.memFd == nil {
		f, err := os.Open(fmt.Sprintf("/proc/%d/mem", r.pid))
		if err != nil && !tolerant {
			return fmt.Errorf("task %d: %w", r.pid, err)
		}
		r.memFd = f
	}
	off := 0
	for _, iv := range r.remote {
		buf := r.buf[off : off+iv.Len]
		off += iv.Len
		var err error = errVanished
		if r.memFd != nil {
			_, err = r.memFd.ReadAt(buf, int64(iv.Base))
		}
		if err == nil {
			continue
		}
		if !tolerant {
			return fmt.Errorf("task %d: read memory %#x-%#x: %w", r.pid, iv.Base, uint64(iv.Base)+uint64(iv.Len), err)
		}
		// Page by page; what cannot be read any more reads as zeros.
		for p := 0; p < len(buf); p += mem.PageSize {
			pg := buf[p : p+mem.PageSize]
			if r.memFd == nil {
				clear(pg)
			} else if _, err := r.memFd.ReadAt(pg, int64(iv.Base)+int64(p)); err != nil {
				clear(pg)
				r.vanished++
			}
		}
	}
	return nil
}
