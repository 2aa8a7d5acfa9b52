package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// memfdKind is a memfd (memfd_create(2)) held as an fd. Its inode is
// dumped once however many fds and open file descriptions reach it, as
// CRIU 4.2 does: a MemfdInodeEntry in memfd.img (name, size, seals, owner,
// mode), its contents as shared memory pages (pagemap-shmem-INO.img and a
// pages-N.img, holes left out), and one MemfdFileEntry per open file
// description (flags, position). A mapping of a memfd gets a file entry of
// its own (MappedMemfd), which the VMA names, as CRIU writes it.
type memfdKind struct {
	kindBase
	// Dump: the inodes seen, by device and inode number.
	inodes map[inodeKey]uint32
	saved  []memfdInode
	// mapped are the file entries made for mappings (MappedMemfd).
	mapped map[memfdMapKey]uint32
	// Restore: the inodes of memfd.img by id, the memfds made, and which
	// of them already handed out their own open file description.
	entries map[uint32]*pb.MemfdInodeEntry
	made    map[uint32]*os.File
	given   map[uint32]bool
	// shmemPages is Dumper.ShmemPages.
	shmemPages func(dir *images.Dir, shmid uint64, pagesID uint32) (PageWriter, error)
}

// PageWriter takes the runs of one pagemap, with their data.
type PageWriter interface {
	Add(e pagemap.Entry, data []byte) error
	Close() error
}

// memfdInode is one memfd's inode as dump read it.
type memfdInode struct {
	entry   *pb.MemfdInodeEntry
	pagesID uint32
	runs    []memfdRun
}

// memfdRun is a run of pages of data (not a hole) at offset off.
type memfdRun struct {
	off  uint64
	data []byte // whole pages
}

const memfdPrefix = "/memfd:"

func newMemfdKind() Kind {
	return &memfdKind{inodes: map[inodeKey]uint32{}, entries: map[uint32]*pb.MemfdInodeEntry{},
		made: map[uint32]*os.File{}, given: map[uint32]bool{}}
}

func (*memfdKind) Type() pb.FdTypes { return pb.FdTypes_MEMFD }

func (*memfdKind) Match(s *fdState) bool { return strings.HasPrefix(s.target, memfdPrefix) }

// memfdName is the name memfd_create was given: the link text without
// "/memfd:" and " (deleted)".
func memfdName(target string) string {
	n, _ := trimDeleted(strings.TrimPrefix(target, memfdPrefix))
	return n
}

// Check refuses a memfd of huge pages (MFD_HUGETLB), which lives on
// hugetlbfs: gockpt does not keep hugetlbfs files.
func (*memfdKind) Check(c *Checker, s *fdState) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(s.link, &fs); err != nil {
		return fmt.Errorf("task %d fd %d: statfs %s: %w", s.pid, s.fd, s.target, err)
	}
	if fs.Type == unix.HUGETLBFS_MAGIC {
		return c.refuse(s, support.Hugetlb, "memfd:"+memfdName(s.target)+" (MFD_HUGETLB)")
	}
	return nil
}

// Dump describes the open file description and, the first time its inode
// is seen, reads the inode: the task is frozen, its contents cannot move.
func (k *memfdKind) Dump(d *Dumper, o object) error {
	key := inodeKey{o.st.Dev, o.st.Ino}
	id, ok := k.inodes[key]
	if !ok {
		id = uint32(len(k.inodes) + 1)
		in, err := readMemfdInode(o, id)
		if err != nil {
			return fmt.Errorf("task %d fd %d: %s: %w", o.pid, o.fd, o.target, err)
		}
		if in.entry.GetSize() > 0 {
			if d.PagesID == nil {
				return fmt.Errorf("task %d fd %d: %s: no pages image number for its contents", o.pid, o.fd, o.target)
			}
			in.pagesID = d.PagesID()
		}
		k.inodes[key] = id
		k.saved = append(k.saved, in)
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_MEMFD.Enum(), Id: proto.Uint32(o.id), Memfd: &pb.MemfdFileEntry{
		Id: proto.Uint32(o.id), Flags: proto.Uint32(o.flags()), Pos: proto.Uint64(o.info.Pos), Fown: o.own, InodeId: proto.Uint32(id),
	}})
	return nil
}

// readMemfdInode reads a memfd's inode through its /proc link (opened
// read-only: the task's fd may be write-only or O_PATH): metadata, seals
// and the runs of pages that hold data.
func readMemfdInode(o object, id uint32) (memfdInode, error) {
	f, err := os.OpenFile(o.link, os.O_RDONLY, 0)
	if err != nil {
		return memfdInode{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return memfdInode{}, err
	}
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return memfdInode{}, fmt.Errorf("F_GET_SEALS: %w", err)
	}
	e := &pb.MemfdInodeEntry{
		Name: proto.String(memfdName(o.target)), Uid: proto.Uint32(st.Uid), Gid: proto.Uint32(st.Gid),
		Size: proto.Uint64(uint64(st.Size)), Shmid: proto.Uint32(uint32(st.Ino)), Seals: proto.Uint32(uint32(seals)),
		InodeId: proto.Uint64(uint64(id)), Mode: proto.Uint32(st.Mode),
	}
	runs, err := memfdDataRuns(f, st.Size)
	if err != nil {
		return memfdInode{}, err
	}
	return memfdInode{entry: e, runs: runs}, nil
}

// memfdDataRuns reads the whole pages of f that hold data
// (SEEK_DATA/SEEK_HOLE), the last one zero-padded past size.
func memfdDataRuns(f *os.File, size int64) ([]memfdRun, error) {
	const page = pagemap.PageSize
	var runs []memfdRun
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("SEEK_DATA at %d: %w", off, err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE at %d: %w", data, err)
		}
		start := data / page * page
		end := min((hole+page-1)/page*page, (size+page-1)/page*page)
		if end <= start {
			break
		}
		buf := make([]byte, end-start)
		n, err := f.ReadAt(buf, start)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read %d bytes at %d: %w", len(buf), start, err)
		}
		if start+int64(n) < min(end, size) {
			return nil, fmt.Errorf("read %d bytes at %d of a %d-byte memfd: the file shrank", n, start, size)
		}
		if len(runs) > 0 && runs[len(runs)-1].off+uint64(len(runs[len(runs)-1].data)) == uint64(start) {
			runs[len(runs)-1].data = append(runs[len(runs)-1].data, buf...)
		} else {
			runs = append(runs, memfdRun{off: uint64(start), data: buf})
		}
		off = end
	}
	return runs, nil
}

// WriteImages writes memfd.img and each memfd's pages.
func (k *memfdKind) WriteImages(dir *images.Dir) error {
	if len(k.saved) == 0 {
		return nil
	}
	entries := make([]*pb.MemfdInodeEntry, len(k.saved))
	for i, in := range k.saved {
		entries[i] = in.entry
		if in.entry.GetSize() == 0 {
			continue
		}
		create := k.shmemPages
		if create == nil {
			create = func(dir *images.Dir, shmid uint64, id uint32) (PageWriter, error) {
				return pagemap.CreateShmem(dir, shmid, id)
			}
		}
		w, err := create(dir, uint64(in.entry.GetShmid()), in.pagesID)
		if err != nil {
			return err
		}
		for _, r := range in.runs {
			e := pagemap.Entry{Vaddr: r.off, NrPages: uint64(len(r.data)) / pagemap.PageSize, Flags: pagemap.FlagPresent}
			if err := w.Add(e, r.data); err != nil {
				w.Close()
				return fmt.Errorf("memfd:%s: %w", in.entry.GetName(), err)
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return writeEntries(dir, images.MemfdFile, images.KindMemfdInode, entries)
}

// LoadImages reads memfd.img; the contents are read when the memfd is made.
func (k *memfdKind) LoadImages(dir *images.Dir) error {
	if !dir.Exists(images.MemfdFile) {
		return nil
	}
	r, err := dir.Open(images.MemfdFile)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var e pb.MemfdInodeEntry
		if _, err := r.ReadEntry(&e); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		k.entries[uint32(e.GetInodeId())] = &e
	}
}

// Open gives the file entry its open file description of the memfd: the
// memfd itself for the first read-write one (so that execveat of it
// works, as after memfd_create), a reopening through /proc for the
// others, with their flags and position.
func (k *memfdKind) Open(o *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetMemfd()
	mf, err := k.inode(o.Dir, e.GetInodeId())
	if err != nil {
		return nil, err
	}
	flags := e.GetFlags()
	var f *os.File
	if flags&unix.O_ACCMODE == unix.O_RDWR && flags&unix.O_PATH == 0 && !k.given[e.GetInodeId()] {
		k.given[e.GetInodeId()] = true
		fd, err := unix.FcntlInt(mf.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		f = os.NewFile(uintptr(fd), mf.Name())
		if err := setFlags(f, flags); err != nil {
			f.Close()
			return nil, err
		}
	} else {
		keep := uint32(unix.O_ACCMODE | unix.O_APPEND | unix.O_NONBLOCK | unix.O_PATH | unix.O_NOATIME | unix.O_DIRECT)
		f, err = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", mf.Fd()), int(flags&keep)|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: reopen with flags %#o: %w", mf.Name(), flags, err)
		}
	}
	if flags&unix.O_PATH == 0 {
		if _, err := f.Seek(int64(e.GetPos()), io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: position %d: %w", mf.Name(), e.GetPos(), err)
		}
	}
	return f, nil
}

// inode makes memfd inode id the first time it is asked for: created
// with its name, filled (holes stay holes), sized, owned and moded, then
// sealed (the seals would forbid the rest).
func (k *memfdKind) inode(dir *images.Dir, id uint32) (*os.File, error) {
	if f, ok := k.made[id]; ok {
		return f, nil
	}
	e, ok := k.entries[id]
	if !ok {
		return nil, fmt.Errorf("memfd inode %d is not in %s", id, images.MemfdFile)
	}
	if e.GetHugetlbFlag() != 0 {
		return nil, fmt.Errorf("memfd:%s: MFD_HUGETLB memfds are not restored by gockpt", e.GetName())
	}
	seals := e.GetSeals()
	flags := unix.MFD_CLOEXEC
	if seals != unix.F_SEAL_SEAL {
		flags |= unix.MFD_ALLOW_SEALING
	}
	fd, err := unix.MemfdCreate(e.GetName(), flags)
	if err != nil {
		return nil, fmt.Errorf("memfd_create(%q): %w", e.GetName(), err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+e.GetName())
	if err := fillMemfd(dir, f, e); err != nil {
		f.Close()
		return nil, fmt.Errorf("memfd:%s: %w", e.GetName(), err)
	}
	k.made[id] = f
	return f, nil
}

func fillMemfd(dir *images.Dir, f *os.File, e *pb.MemfdInodeEntry) error {
	if e.GetSize() > 0 {
		if err := readShmemPages(dir, e.GetShmid(), e.GetSize(), f); err != nil {
			return err
		}
	}
	if e.GetSize() > 1<<62 {
		return fmt.Errorf("size %d", e.GetSize())
	}
	if err := f.Truncate(int64(e.GetSize())); err != nil {
		return err
	}
	fd := int(f.Fd())
	if err := unix.Fchown(fd, int(e.GetUid()), int(e.GetGid())); err != nil {
		return fmt.Errorf("chown %d:%d: %w", e.GetUid(), e.GetGid(), err)
	}
	if e.Mode != nil {
		if err := unix.Fchmod(fd, e.GetMode()&07777); err != nil {
			return fmt.Errorf("chmod %#o: %w", e.GetMode()&07777, err)
		}
	}
	// Made without MFD_ALLOW_SEALING, a memfd has F_SEAL_SEAL alone already.
	if seals := e.GetSeals(); seals != 0 && seals != unix.F_SEAL_SEAL {
		if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, int(e.GetSeals())); err != nil {
			return fmt.Errorf("F_ADD_SEALS %#x: %w", e.GetSeals(), err)
		}
	}
	return nil
}

// readShmemPages writes the pages of pagemap-shmem-SHMID.img into f at
// their offsets; what no entry covers stays a hole.
func readShmemPages(dir *images.Dir, shmid uint32, size uint64, f *os.File) error {
	name := images.ShmemPagemapFile(uint64(shmid))
	pm, err := dir.OpenFile(name)
	if err != nil {
		return err
	}
	defer pm.Close()
	pagesID, entries, err := pagemap.Parse(pm, name)
	if err != nil {
		return err
	}
	pages, err := dir.OpenFile(images.PagesFile(pagesID))
	if err != nil {
		return err
	}
	defer pages.Close()
	var at int64
	buf := make([]byte, 1<<20)
	for _, e := range entries {
		if e.Flags&pagemap.FlagPresent == 0 {
			return fmt.Errorf("%s: entry %s is not in this directory's pages", name, e)
		}
		if e.End() > size+pagemap.PageSize-1 {
			return fmt.Errorf("%s: entry %s beyond the memfd's %d bytes", name, e, size)
		}
		for off := uint64(0); off < e.NrPages*pagemap.PageSize; off += uint64(len(buf)) {
			chunk := buf[:min(uint64(len(buf)), e.NrPages*pagemap.PageSize-off)]
			if _, err := pages.ReadAt(chunk, at); err != nil {
				return fmt.Errorf("%s: %d bytes at %d for %s: %w", pages.Name(), len(chunk), at, e, err)
			}
			if _, err := f.WriteAt(chunk, int64(e.Vaddr+off)); err != nil {
				return err
			}
			at += int64(len(chunk))
		}
	}
	return nil
}

// Close closes the memfds made; the tasks hold their own.
func (k *memfdKind) Close() {
	for _, f := range k.made {
		f.Close()
	}
}

func (*memfdKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetMemfd().GetFown(), e.GetMemfd().GetFlags()
}

func (*memfdKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("memfd inode %d", e.GetMemfd().GetInodeId())
}

// MappedMemfd describes a memfd task pid maps, read through its map_files
// link mapFile (link text target): its inode once, whether fds hold it
// too or not, and an open file description of its own for the mapping
// with flags, as CRIU writes a mapped memfd. It returns that file's id,
// for the VMA's shmid.
func (d *Dumper) MappedMemfd(pid int, mapFile, target string, st *unix.Stat_t, flags uint32) (uint32, error) {
	k := d.kinds.byType[pb.FdTypes_MEMFD].(*memfdKind)
	key := inodeKey{st.Dev, st.Ino}
	id, ok := k.inodes[key]
	if !ok {
		id = uint32(len(k.inodes) + 1)
		in, err := readMemfdInode(object{pid: pid, link: mapFile, target: target}, id)
		if err != nil {
			return 0, fmt.Errorf("task %d: mapped %s: %w", pid, target, err)
		}
		if in.entry.GetSize() > 0 {
			if d.PagesID == nil {
				return 0, fmt.Errorf("task %d: mapped %s: no pages image number for its contents", pid, target)
			}
			in.pagesID = d.PagesID()
		}
		k.inodes[key] = id
		k.saved = append(k.saved, in)
	}
	mk := memfdMapKey{id, flags}
	if fid, ok := k.mapped[mk]; ok {
		return fid, nil
	}
	fid := d.newID()
	if k.mapped == nil {
		k.mapped = map[memfdMapKey]uint32{}
	}
	k.mapped[mk] = fid
	none := &pb.FownEntry{Uid: proto.Uint32(0), Euid: proto.Uint32(0), Signum: proto.Uint32(0), PidType: proto.Uint32(0), Pid: proto.Uint32(0)}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_MEMFD.Enum(), Id: proto.Uint32(fid), Memfd: &pb.MemfdFileEntry{
		Id: proto.Uint32(fid), Flags: proto.Uint32(flags), Pos: proto.Uint64(0), Fown: none, InodeId: proto.Uint32(id),
	}})
	return fid, nil
}

// memfdMapKey is a memfd inode and the open mode of a mapping of it.
type memfdMapKey struct {
	inode uint32
	flags uint32
}
