package dump

import (
	"fmt"
	"math/bits"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// mmap flags CRIU records from VmFlags (x86-64 values).
const (
	mapGrowsdown = 0x100
	mapLocked    = 0x2000
	mapNoreserve = 0x4000
	mapHugetlb   = 0x40000
	mapHugeShift = 26
)

// madvise advice numbers; CRIU records each as bit 1<<advice.
const (
	madvRandom     = 1
	madvSequential = 2
	madvDontfork   = 10
	madvMergeable  = 12
	madvHugepage   = 14
	madvNohugepage = 15
	madvDontdump   = 16
	madvWipeonfork = 18
)

// vmaPlan is a VMA and what to do with its pages.
type vmaPlan struct {
	entry *pb.VmaEntry
	smaps *proc.SmapsVMA
	// dumpPages: private memory whose present pages go to the images.
	dumpPages   bool
	privateFile bool
	// vdso: the vDSO, whose pages are dumped whole and never tracked:
	// CRIU's restore reads the dumped vDSO's symbols to decide whether the
	// running kernel's fits in its place.
	vdso bool
	// aio: an AIO ring, whose pages are dumped whole and never tracked
	// (the kernel writes them).
	aio *pb.AioRingEntry
	// shmem: shared anonymous memory, whose pages are written once per
	// object (writeShmem), not with the task's.
	shmem bool
}

// area is the VMA as dirty trackers see it.
func (p vmaPlan) area() mem.Area {
	return mem.Area{Start: p.entry.GetStart(), End: p.entry.GetEnd(), PrivateFile: p.privateFile, UffdWP: p.smaps.Flags.Has("uw")}
}

// collectVMAs turns /proc/PID/smaps into CRIU vma entries. vvar and
// vvar_vclock become one VVAR entry, as CRIU writes them; their pages are
// never dumped. The vDSO's pages are, as CRIU dumps them (its restore
// compares the dumped vDSO with the running kernel's); gockpt's restore
// moves the running kernel's vDSO into place and skips them.
func collectVMAs(pid int, fd *files.Dumper, areas []proc.SmapsVMA) ([]vmaPlan, error) {
	if areas == nil {
		var err error
		if areas, err = proc.ReadSmaps(pid); err != nil {
			return nil, fmt.Errorf("task %d: %w", pid, err)
		}
	}
	var out []vmaPlan
	for i := range areas {
		a := &areas[i]
		e := &pb.VmaEntry{
			Start:  proto.Uint64(a.Start),
			End:    proto.Uint64(a.End),
			Pgoff:  proto.Uint64(a.Offset),
			Shmid:  proto.Uint64(0),
			Fd:     proto.Int64(-1),
			Status: proto.Uint32(0),
		}
		var prot uint32
		if a.Perms&proc.PermRead != 0 {
			prot |= unix.PROT_READ
		}
		if a.Perms&proc.PermWrite != 0 {
			prot |= unix.PROT_WRITE
		}
		if a.Perms&proc.PermExec != 0 {
			prot |= unix.PROT_EXEC
		}
		e.Prot = proto.Uint32(prot)
		var flags uint32 = unix.MAP_PRIVATE
		if a.Shared() {
			flags = unix.MAP_SHARED
		}
		if a.Flags.GrowsDown() {
			flags |= mapGrowsdown
		}
		if a.Flags.Locked() {
			flags |= mapLocked
		}
		if a.Flags.Has("nr") {
			flags |= mapNoreserve
		}
		if a.Flags.HugeTLB() {
			flags |= mapHugetlb
			if a.KernelPageSize > mem.PageSize {
				// MAP_HUGE_2MB and the like: log2 of the page size.
				flags |= uint32(bits.TrailingZeros64(a.KernelPageSize)) << mapHugeShift
			}
		}
		var madv uint64
		for _, m := range []struct {
			on  bool
			bit uint
		}{{a.Flags.RandRead(), madvRandom}, {a.Flags.SeqRead(), madvSequential}, {a.Flags.DontFork(), madvDontfork},
			{a.Flags.Mergeable(), madvMergeable}, {a.Flags.HugePage(), madvHugepage}, {a.Flags.NoHugePage(), madvNohugepage},
			{a.Flags.DontDump(), madvDontdump}, {a.Flags.WipeOnFork(), madvWipeonfork}} {
			if m.on {
				madv |= 1 << m.bit
			}
		}
		if madv != 0 {
			e.Madv = proto.Uint64(madv)
		}
		plan := vmaPlan{entry: e, smaps: a}
		status := uint32(images.VMAAreaRegular)
		if aioRing(a) {
			ring, err := aioRingEntry(fd.Checker, pid, a)
			if err != nil {
				return nil, err
			}
			e.Flags = proto.Uint32(flags)
			e.Status = proto.Uint32(images.VMAAreaAIORing)
			out = append(out, vmaPlan{entry: e, smaps: a, dumpPages: true, aio: ring})
			continue
		}
		if sharedAnonArea(a) {
			e.Shmid = proto.Uint64(a.Inode)
			e.Flags = proto.Uint32(flags | unix.MAP_ANONYMOUS)
			e.Status = proto.Uint32(status | images.VMAAnonShared)
			plan.shmem = true
			out = append(out, plan)
			continue
		}
		kind := a.Kind
		if anonHugetlb(a) {
			kind = proc.KindAnon
		}
		switch kind {
		case proc.KindVVAR, proc.KindVVARVClock:
			if n := len(out); n > 0 && out[n-1].entry.GetStatus()&images.VMAAreaVVAR != 0 && out[n-1].entry.GetEnd() == a.Start {
				out[n-1].entry.End = proto.Uint64(a.End)
				continue
			}
			status |= images.VMAAreaVVAR | images.VMAAnonPrivate
			flags |= unix.MAP_ANONYMOUS
		case proc.KindVDSO:
			status |= images.VMAAreaVDSO | images.VMAAnonPrivate
			flags |= unix.MAP_ANONYMOUS
			plan.vdso = true
		case proc.KindVSyscall:
			status = images.VMAAreaVsyscall
		case proc.KindFile:
			if err := vmaRefusal(fd.Checker, pid, a); err != nil {
				return nil, err
			}
			var st unix.Stat_t
			mapFile := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, a.Start, a.End)
			// Following a map_files link is a CAP_CHECKPOINT_RESTORE check.
			err := lsm.WithoutAuditedCheckpointRestore(func() error { return unix.Stat(mapFile, &st) })
			if err != nil {
				return nil, fmt.Errorf("task %d VMA %#x-%#x: stat mapped file %s: %w", pid, a.Start, a.End, a.Path, err)
			}
			openFlags := uint32(unix.O_RDONLY)
			if a.Shared() {
				// A shared mapping may be mprotect'ed up to what its
				// file was opened for: keep that mode, as CRIU does.
				if openFlags, err = mappedFileMode(mapFile); err != nil {
					return nil, fmt.Errorf("task %d VMA %#x-%#x: mapped file %s: %w", pid, a.Start, a.End, a.Path, err)
				}
			}
			path := a.Path
			if a.Deleted {
				path += " (deleted)"
			}
			var id uint32
			// A deleted file's content is read through map_files.
			err = lsm.WithoutAuditedCheckpointRestore(func() (err error) {
				if memfdArea(a) {
					id, err = fd.MappedMemfd(pid, mapFile, a.Path+" (deleted)", &st, openFlags)
					status |= images.VMAAreaMemfd
					return err
				}
				id, err = fd.Path(fmt.Sprintf("task %d (%s) VMA %#x-%#x", pid, fd.Checker.Comm(pid), a.Start, a.End), mapFile, path, &st, openFlags)
				return err
			})
			if err != nil {
				return nil, err
			}
			e.Shmid = proto.Uint64(uint64(id))
			e.Fdflags = proto.Uint32(openFlags)
			if a.Shared() {
				status |= images.VMAFileShared
			} else {
				status |= images.VMAFilePrivate
				plan.dumpPages, plan.privateFile = true, true
			}
		default: // anonymous, [heap], [stack], [anon:NAME]
			flags |= unix.MAP_ANONYMOUS
			if err := vmaRefusal(fd.Checker, pid, a); err != nil {
				return nil, err
			}
			status |= images.VMAAnonPrivate
			if a.Kind == proc.KindHeap {
				status |= images.VMAAreaHeap
			}
			if a.Kind == proc.KindStack {
				status |= images.VMAAreaStack
			}
			plan.dumpPages = true
		}
		e.Flags = proto.Uint32(flags)
		e.Status = proto.Uint32(status)
		out = append(out, plan)
	}
	return out, nil
}

// mappedFileMode is the open mode of the file behind a mapping: its
// /proc/PID/map_files link has the owner's read and write bits of the
// file's open mode (FMODE_READ, FMODE_WRITE).
func mappedFileMode(mapFile string) (uint32, error) {
	var st unix.Stat_t
	err := lsm.WithoutAuditedCheckpointRestore(func() error { return unix.Lstat(mapFile, &st) })
	if err != nil {
		return 0, err
	}
	switch st.Mode & 0o600 {
	case 0o600:
		return unix.O_RDWR, nil
	case 0o200:
		return unix.O_WRONLY, nil
	}
	return unix.O_RDONLY, nil
}

// readAuxv returns the task's saved auxiliary vector as CRIU stores it: the
// (type, value) pairs without the AT_NULL pair that ends them. CRIU reads at
// most 44 words on x86-64 (22 pairs) and refuses more; PR_SET_MM_MAP fills
// what follows the given pairs with AT_NULL itself.
func readAuxv(pid int) ([]uint64, error) {
	auxv, err := proc.ReadAuxv(pid)
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	return auxv[:len(auxv)-2], nil
}
