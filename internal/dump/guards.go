package dump

import (
	"errors"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
	pb "github.com/gockpt/gockpt/proto"
)

// guardEntries lists the task's MADV_GUARD_INSTALL guard pages as CRIU
// records them: one entry per run of guard pages, status VMA_AREA_GUARD
// alone, after the areas. They live in page tables, not in areas, so only
// PAGEMAP_SCAN's PAGE_IS_GUARD shows them (Linux 6.15+); an older kernel
// refuses the category (or has no PAGEMAP_SCAN), and has no guard anywhere.
func guardEntries(pid int, plans []vmaPlan) ([]*pb.VmaEntry, error) {
	pm, err := mem.OpenPagemap(pid)
	if err != nil {
		return nil, err
	}
	defer pm.Close()
	var out []*pb.VmaEntry
	for _, p := range plans {
		st := p.entry.GetStatus()
		if st&images.VMAAreaRegular == 0 || st&(images.VMAAreaVDSO|images.VMAAreaVVAR) != 0 {
			continue
		}
		regs, err := pm.ScanRegions(p.entry.GetStart(), p.entry.GetEnd(), mem.ScanArgs{CategoryMask: mem.PageIsGuard, ReturnMask: mem.PageIsGuard})
		if errors.Is(err, unix.EINVAL) {
			log.Debugf("task %d: this kernel's PAGEMAP_SCAN has no PAGE_IS_GUARD: guard pages (MADV_GUARD_INSTALL) cannot be seen", pid)
			return nil, nil
		}
		if errors.Is(err, unix.ENOTTY) {
			// No PAGEMAP_SCAN at all (before Linux 6.7): no
			// MADV_GUARD_INSTALL either (6.13), so no guard pages.
			log.Debugf("task %d: this kernel has no PAGEMAP_SCAN, nor guard pages", pid)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, r := range regs {
			out = append(out, &pb.VmaEntry{
				Start: proto.Uint64(r.Start), End: proto.Uint64(r.End), Pgoff: proto.Uint64(0), Shmid: proto.Uint64(0),
				Prot: proto.Uint32(0), Flags: proto.Uint32(0), Status: proto.Uint32(images.VMAAreaGuard), Fd: proto.Int64(-1),
			})
		}
	}
	return out, nil
}
