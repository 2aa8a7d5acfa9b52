// Package files knows open files by kind: how to describe each one in CRIU's
// files.img/fdinfo images at dump, and how to rebuild it at restore.
//
// Dump looks at a task's fds from outside: readlink and stat of
// /proc/PID/fd/N tell the kind, /proc/PID/fdinfo/N the position and flags,
// and a dup taken with pidfd_getfd (the same open file description) reads
// what only the file itself can tell (deleted-file contents, F_GETOWN) without
// moving the task's file position.
package files

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/kcmp"
	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// DefaultGhostLimit is CRIU's default --ghost-limit: deleted files up to this
// size have their content saved in the images.
const DefaultGhostLimit = 1 << 20

// Ghost is a deleted object whose metadata, and for a file its content,
// are saved (CRIU's ghost file): Content whole, or Chunks of data around
// holes when Entry.Chunks is set.
type Ghost struct {
	ID      uint32
	Entry   *pb.GhostFileEntry
	Content []byte
	Chunks  []GhostChunk
}

// Dumper collects the file objects of a whole tree; an object shared by
// several fds or tasks (one pipe, one open file description) is one entry.
type Dumper struct {
	// Checker refuses what cannot be kept; it knows the tree.
	Checker *Checker
	// OnRepair, when set, hears of each socket about to be put in repair
	// mode (task, fd, inode, SO_REUSEADDR) before it is: the watchdog
	// takes it out again if gockpt dies.
	OnRepair func(pid, fd int, ino uint64, reuse bool) error
	// PagesID numbers a new pages-N.img, from the same count as the
	// tasks' memory images: memfd contents go in one of their own.
	PagesID func() uint32
	// ShmemPages starts the pagemap of a shared memory object's pages
	// (a memfd's contents); nil: pagemap-shmem-SHMID.img and pages-ID.img
	// in the images directory.
	ShmemPages func(dir *images.Dir, shmid uint64, pagesID uint32) (PageWriter, error)

	Files  []*pb.FileEntry
	Ghosts []Ghost
	Remaps []*pb.RemapFilePathEntry
	// Links are the links made to keep deleted files that still have
	// another name (linked remaps).
	Links []LinkRemap

	nextID uint32
	// byInode lists the fds already described, per inode, so that an fd
	// sharing an open file description with one of them (inherited across
	// fork, or dup'ed) is found with kcmp and becomes the same object.
	byInode map[inodeKey]*kcmp.Set[uint32]
	// byPath dedups files opened by path only (exe, cwd, mapped files).
	byPath  map[pathKey]uint32
	ghostOf map[pathKey]uint32
	linkOf  map[inodeKey]uint32
	// needs are the file entries of deleted objects, for Verify.
	needs map[uint32]need
	// kinds are this dump's kinds of files, with what they keep for
	// their own images.
	kinds *kindSet
	// locks are the file locks seen (with Checker.FileLocks).
	locks lockSet
	// DroppedDatagrams and DroppedBytes count what was waiting in UDP
	// sockets, which restore cannot put back.
	DroppedDatagrams, DroppedBytes int
}

type inodeKey struct{ dev, ino uint64 }

type pathKey struct {
	dev, ino uint64
	flags    uint32
}

// NewDumper returns an empty dumper that refuses what c refuses.
func NewDumper(c *Checker) *Dumper {
	return &Dumper{
		Checker: c,
		byInode: map[inodeKey]*kcmp.Set[uint32]{},
		byPath:  map[pathKey]uint32{},
		ghostOf: map[pathKey]uint32{},
		linkOf:  map[inodeKey]uint32{},
		needs:   map[uint32]need{},
		kinds:   newKindSet(),
	}
}

func (d *Dumper) newID() uint32 {
	d.nextID++
	return d.nextID
}

// Fds describes the fds of task pid and hands each one's fdinfo entry to
// each, in order, adding the file objects to the dumper unless an earlier
// fd already did.
func (d *Dumper) Fds(pid int, fds []int, each func(*pb.FdinfoEntry) error) error {
	return eachFdState(pid, fds, func(fd int, s *fdState, err error) error {
		if err != nil {
			return err
		}
		fe, err := d.fd(s)
		if err != nil {
			return err
		}
		return each(fe)
	})
}

// Fd describes fd of task pid and returns its fdinfo entry.
func (d *Dumper) Fd(pid, fd int) (*pb.FdinfoEntry, error) {
	var fe *pb.FdinfoEntry
	err := d.Fds(pid, []int{fd}, func(e *pb.FdinfoEntry) error { fe = e; return nil })
	return fe, err
}

func (d *Dumper) fd(s *fdState) (*pb.FdinfoEntry, error) {
	pid, fd := s.pid, s.fd
	k, own, err := d.Checker.check(s)
	if err != nil {
		return nil, err
	}
	fe := &pb.FdinfoEntry{Fd: proto.Uint32(uint32(fd)), Flags: proto.Uint32(0), Type: k.Type().Enum()}
	if s.info.Flags&unix.O_CLOEXEC != 0 {
		fe.Flags = proto.Uint32(unix.FD_CLOEXEC)
	}
	// An fd sharing its open file description with one described earlier
	// (inherited across fork, or dup'ed) names the same object; a new one
	// takes the next id. If describing it fails, so does the dump.
	id, seen := d.ofd(pid, fd, &s.st)
	fe.Id = proto.Uint32(id)
	if d.Checker.FileLocks {
		if err := d.locks.note(s, id); err != nil {
			return nil, err
		}
	}
	if seen {
		return fe, nil
	}
	o := object{pid: pid, fd: fd, id: id, own: own, link: s.link, target: s.target, st: &s.st, info: s.info}
	if err := d.kinds.byType[k.Type()].Dump(d, o); err != nil {
		return nil, err
	}
	return fe, nil
}

// object is one new open file description being described.
type object struct {
	pid, fd int
	id      uint32
	own     *pb.FownEntry
	link    string // /proc/PID/fd/N
	target  string // what the link says
	st      *unix.Stat_t
	info    *proc.Fdinfo
}

func (o object) flags() uint32 { return o.info.Flags &^ unix.O_CLOEXEC }

// ofd is the object id of fd's open file description: the one of an fd
// described earlier on the same one (found with kcmp among the fds on
// the same inode), or a new id, remembered, with seen false.
func (d *Dumper) ofd(pid, fd int, st *unix.Stat_t) (id uint32, seen bool) {
	k := inodeKey{st.Dev, st.Ino}
	set := d.byInode[k]
	if set == nil {
		set = &kcmp.Set[uint32]{Type: kcmp.File}
		d.byInode[k] = set
	}
	return set.FindOrAdd(pid, uintptr(fd), d.newID)
}

// Close releases what the dumper's kinds and checker opened (after a dump
// that killed the tree, the copies of its connections close in repair
// mode: without a word to their peers).
func (d *Dumper) Close() {
	for _, k := range d.kinds.list {
		k.Close()
	}
	d.Checker.Close()
}

// WriteImages writes files.img, the deleted files kept (remap-fpath.img,
// ghost files), the file locks (filelocks.img, with Checker.FileLocks)
// and each kind's own images.
func (d *Dumper) WriteImages(dir *images.Dir) error {
	if err := writeEntries(dir, images.FilesFile, images.KindFiles, d.Files); err != nil {
		return err
	}
	if len(d.Remaps) > 0 {
		if err := writeEntries(dir, images.RemapFpathFile, images.KindRemapFpath, d.Remaps); err != nil {
			return err
		}
	}
	if err := d.writeGhosts(dir); err != nil {
		return err
	}
	if err := d.writeLocks(dir); err != nil {
		return err
	}
	if k, ok := d.kinds.byType[pb.FdTypes_MEMFD].(*memfdKind); ok {
		k.shmemPages = d.ShmemPages
	}
	for _, k := range d.kinds.list {
		if err := k.WriteImages(dir); err != nil {
			return err
		}
	}
	return nil
}

func writeEntries[T proto.Message](dir *images.Dir, name string, kind *images.Kind, entries []T) error {
	w, err := dir.Create(name, kind)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, e := range entries {
		if err := w.WriteEntry(e); err != nil {
			return err
		}
	}
	return w.Close()
}

// Path describes a file the task reaches by path rather than by fd: its exe,
// cwd, root, or a file it maps. flags are the open flags restore should use.
// path is what /proc says; a deleted one (" (deleted)") is kept through
// link, which opens it (/proc/PID/cwd, /proc/PID/map_files/...), as a
// ghost or a linked remap; where names its user for messages.
func (d *Dumper) Path(where, link, path string, st *unix.Stat_t, flags uint32) (uint32, error) {
	k := pathKey{dev: st.Dev, ino: st.Ino, flags: flags}
	if id, ok := d.byPath[k]; ok {
		return id, nil
	}
	id := d.newID()
	d.byPath[k] = id
	path, deleted := trimDeleted(path)
	if deleted {
		if err := d.remap(where, link, path, id, st); err != nil {
			return 0, err
		}
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_REG.Enum(), Id: proto.Uint32(id), Reg: &pb.RegFileEntry{
		Id:    proto.Uint32(id),
		Flags: proto.Uint32(flags),
		Pos:   proto.Uint64(0),
		Fown:  &pb.FownEntry{Uid: proto.Uint32(0), Euid: proto.Uint32(0), Signum: proto.Uint32(0), PidType: proto.Uint32(0), Pid: proto.Uint32(0)},
		Name:  proto.String(path),
		Size:  validationSize(st, flags),
		Mode:  proto.Uint32(st.Mode),
	}})
	return id, nil
}

// ListFds returns the task's open fds in ascending order.
func ListFds(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, fmt.Errorf("task %d: list fds: %w", pid, err)
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}
