package restore

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/mem"
)

// shmemFile is the shared anonymous object shmid, made once in gockpt for
// every task that maps it: an anonymous MAP_SHARED area of the object's
// size (so maps shows it as the deleted /dev/zero it was), filled with its
// pages from pagemap-shmem-SHMID.img, and reached as a file through
// gockpt's map_files link. Tasks map that file.
func (rs *restorer) shmemFile(shmid uint64) (*os.File, error) {
	if f := rs.shmem[shmid]; f != nil {
		return f, nil
	}
	where := fmt.Sprintf("shared anonymous memory (shmid %d)", shmid)
	size := uint64(0)
	for _, t := range rs.plan.Tasks {
		for _, x := range t.MM.GetVmas() {
			if x.GetStatus()&images.VMAAnonShared != 0 && x.GetShmid() == shmid {
				size = max(size, x.GetPgoff()+x.GetEnd()-x.GetStart())
			}
		}
	}
	var pagesID uint32
	var entries []pagemap.Entry
	name := images.ShmemPagemapFile(shmid)
	if rs.plan.Dir.Exists(name) {
		pf, err := os.Open(rs.plan.Dir.Join(name))
		if err != nil {
			return nil, err
		}
		pagesID, entries, err = pagemap.Parse(pf, pf.Name())
		pf.Close()
		if err != nil {
			return nil, err
		}
		if n := len(entries); n > 0 {
			size = max(size, entries[n-1].End())
		}
	}
	size = (size + mem.PageSize - 1) &^ (mem.PageSize - 1)
	if size == 0 {
		return nil, fmt.Errorf("%s: no mapping gives its size", where)
	}
	area, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap %d bytes: %w", where, size, err)
	}
	defer unix.Munmap(area)
	if len(entries) > 0 {
		pages, err := os.Open(rs.plan.Dir.Join(images.PagesFile(pagesID)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		defer pages.Close()
		var at int64
		for _, e := range entries {
			if e.Flags&pagemap.FlagPresent == 0 || e.Flags&pagemap.FlagParent != 0 {
				return nil, fmt.Errorf("%s: %s: pages in a parent images directory (an incremental dump of another tool): gockpt restores shared memory from full dumps only", where, name)
			}
			n := int64(e.NrPages * mem.PageSize)
			if _, err := pages.ReadAt(area[e.Vaddr:e.Vaddr+uint64(n)], at); err != nil {
				return nil, fmt.Errorf("%s: read %s: %w", where, images.PagesFile(pagesID), err)
			}
			at += n
		}
	}
	start := sliceAddr(area)
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/map_files/%x-%x", start, start+size), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: open gockpt's mapping of it: %w", where, err)
	}
	if rs.shmem == nil {
		rs.shmem = map[uint64]*os.File{}
	}
	rs.shmem[shmid] = f
	return f, nil
}
