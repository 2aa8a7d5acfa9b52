package restore

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// Copy-on-write sharing between a parent and the children it forked comes
// back the way fork made it: a child is cloned from its restored parent, so
// it starts with the parent's private anonymous areas shared copy-on-write.
// An area the child has at the same place, with the same protection, flags
// and advice as the parent's, is kept instead of being mapped afresh; its
// pages that hold what the child's image holds stay shared, only the others
// are written (which copies them), and the pages the child's image lacks are
// dropped (they read as zeros, as they did at dump). CRIU's restore does the
// same with the areas a child inherits.

// cowKey is an area's place.
type cowKey struct{ start, end uint64 }

// inheritedAreas lists the areas of t the clone from its parent already has
// as t needs them: private anonymous areas of both images alike, which the
// task has now (from the clone) exactly at their place. Locked areas are
// not inherited (fork drops VM_LOCKED), nor are areas the parent keeps from
// its children (MADV_DONTFORK, MADV_WIPEONFORK).
func inheritedAreas(t *Task, now []proc.VMA) map[cowKey]bool {
	if t.Parent == nil || t.Parent.MM == nil {
		return nil
	}
	parent := map[cowKey]*pb.VmaEntry{}
	for _, v := range t.Parent.MM.GetVmas() {
		if v.GetStatus()&images.VMAAreaRegular == 0 {
			continue
		}
		parent[cowKey{v.GetStart(), v.GetEnd()}] = v
	}
	present := map[cowKey]bool{}
	for _, v := range now {
		if v.Kind == proc.KindAnon || v.Kind == proc.KindHeap || v.Kind == proc.KindStack || v.Kind == proc.KindAnonNamed {
			present[cowKey{v.Start, v.End}] = !v.Shared()
		}
	}
	const notInherited = 1<<madvDontfork | 1<<madvWipeonfork
	out := map[cowKey]bool{}
	for _, v := range t.MM.GetVmas() {
		k := cowKey{v.GetStart(), v.GetEnd()}
		p := parent[k]
		st := v.GetStatus()
		if p == nil || !present[k] || st&images.VMAAreaRegular == 0 || st&images.VMAAnonPrivate == 0 ||
			st&(images.VMAAreaVDSO|images.VMAAreaVVAR|images.VMAAreaVsyscall|images.VMAAreaAIORing) != 0 ||
			v.GetFlags()&(mapLocked|mapHugetlb) != 0 || v.GetMadv()&notInherited != 0 {
			continue
		}
		if p.GetStatus() != st || p.GetProt() != v.GetProt() || p.GetFlags() != v.GetFlags() || p.GetMadv() != v.GetMadv() {
			continue
		}
		out[k] = true
	}
	return out
}

// mmap flags and advice inheritedAreas looks at (x86-64 values).
const (
	mapLocked      = 0x2000
	mapHugetlb     = 0x40000
	madvDontfork   = 10
	madvWipeonfork = 18
)

// dropUnsaved drops the pages of the inherited areas that the task's
// pagemap does not hold: the task had none there (or only the zero page)
// at dump, and must not keep its parent's.
func dropUnsaved(r *remote, kept map[cowKey]bool, entries []pagemap.Entry) error {
	for k := range kept {
		addr := k.start
		drop := func(end uint64) error {
			if end <= addr {
				return nil
			}
			return r.q(fmt.Sprintf("madvise(MADV_DONTNEED) %#x-%#x", addr, end), unix.SYS_MADVISE, addr, end-addr, unix.MADV_DONTNEED)
		}
		for _, e := range entries {
			if e.End() <= k.start || e.Vaddr >= k.end || e.Flags&(pagemap.FlagPresent|pagemap.FlagParent) == 0 {
				continue
			}
			if err := drop(max(e.Vaddr, k.start)); err != nil {
				return err
			}
			addr = max(addr, min(e.End(), k.end))
		}
		if err := drop(k.end); err != nil {
			return err
		}
	}
	return nil
}

// inKept reports whether [addr, addr+n) lies in an inherited area.
func inKept(kept map[cowKey]bool, addr, n uint64) bool {
	for k := range kept {
		if addr >= k.start && addr+n <= k.end {
			return true
		}
	}
	return false
}

// writeChanged writes into an inherited area only the pages of chunk that
// differ from what the task has at addr, so that the others stay shared
// with its parent. It returns the number of pages written.
// The task's memory is read through /proc/PID/mem: process_vm_readv pins
// the pages it reads, and the kernel unshares a copy-on-write page it pins
// (gup_must_unshare), which is what this avoids.
func writeChanged(mem *os.File, pid int, addr uint64, chunk, cur []byte) (uint64, error) {
	cur = cur[:len(chunk)]
	if _, err := mem.ReadAt(cur, int64(addr)); err != nil {
		return 0, fmt.Errorf("task %d: read %d bytes at %#x: %w", pid, len(cur), addr, err)
	}
	var written uint64
	for off := 0; off < len(chunk); {
		if bytes.Equal(chunk[off:off+pageSize], cur[off:off+pageSize]) {
			off += pageSize
			continue
		}
		end := off + pageSize
		for end < len(chunk) && !bytes.Equal(chunk[end:end+pageSize], cur[end:end+pageSize]) {
			end += pageSize
		}
		if err := ptrace.WriteMem(pid, addr+uint64(off), chunk[off:end]); err != nil {
			return written, err
		}
		written += uint64(end-off) / pageSize
		off = end
	}
	return written, nil
}

const pageSize = 4096

// madvise advice for lightweight guard pages (Linux 6.13+).
const (
	madvGuardInstall = 102
	madvGuardRemove  = 103
)

// removeInheritedGuards removes the guard pages a child inherited from its
// parent in the areas it keeps: its own are installed with the rest
// (installGuards), and pages it has where its parent had guards are written.
// A kernel without guard pages has none to remove.
func removeInheritedGuards(t *Task, r *remote, kept map[cowKey]bool) error {
	if t.Parent == nil || !hasGuards(t.Parent) {
		return nil // the parent was restored without guard pages
	}
	for k := range kept {
		_, err := r.call(fmt.Sprintf("madvise(MADV_GUARD_REMOVE) %#x-%#x", k.start, k.end), unix.SYS_MADVISE, k.start, k.end-k.start, madvGuardRemove)
		if errors.Is(err, unix.EINVAL) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// installGuards installs the guard pages of the image (VMA_AREA_GUARD
// entries), once the areas hold their pages.
func installGuards(t *Task, r *remote) error {
	for _, v := range t.MM.GetVmas() {
		if v.GetStatus() != images.VMAAreaGuard {
			continue
		}
		if err := r.queue(fmt.Sprintf("madvise(MADV_GUARD_INSTALL) %#x-%#x", v.GetStart(), v.GetEnd()), " (guard pages need Linux 6.13 or later)",
			unix.SYS_MADVISE, v.GetStart(), v.GetEnd()-v.GetStart(), madvGuardInstall); err != nil {
			return err
		}
	}
	return nil
}

// hasGuards tells whether the image of task t has guard pages, which its
// children inherit.
func hasGuards(t *Task) bool {
	for _, v := range t.MM.GetVmas() {
		if v.GetStatus() == images.VMAAreaGuard {
			return true
		}
	}
	return false
}
