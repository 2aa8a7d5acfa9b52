package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// Deleted objects, as CRIU keeps them (files-reg.c): an unlinked inode
// nothing else names is a ghost (ghost-file-N.img: its metadata, and a
// regular file's data, in chunks when it is at least ghostChunksMin bytes,
// so that holes stay holes); one still reachable through another hard link
// is a linked remap (a new link made at dump, link_remap.ID beside where
// the file was, which restore opens and removes).

// ghostChunksMin is CRIU's GHOST_CHUNKS_THRESH: smaller files are saved
// whole.
const ghostChunksMin = 3 * 4096

// GhostChunk is one extent of data of a sparse ghost file.
type GhostChunk struct {
	Off  uint64
	Data []byte
}

// GhostBytes is what saving a deleted file costs: the data it holds, not
// its apparent size (a sparse file is mostly holes).
func GhostBytes(st *unix.Stat_t) int64 {
	if a := st.Blocks * 512; a < st.Size {
		return a
	}
	return st.Size
}

// need is what restore needs for a deleted object, for the check after
// the images are written.
type need struct {
	where string // "task 5 (prog) fd 3", "task 5 working directory"
	name  string
	kind  string // "file", "FIFO", "directory", "device"
}

// kindWord names a file type as refusals and checks print it.
func kindWord(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "device"
	}
	return "file"
}

// remap keeps a deleted object behind file entry fileID: its content as a
// ghost, or a new link to it when it still has one elsewhere. link opens
// the object (/proc/PID/fd/N, /proc/PID/cwd, /proc/PID/map_files/...).
func (d *Dumper) remap(where, link, name string, fileID uint32, st *unix.Stat_t) error {
	d.needs[fileID] = need{where: where, name: name, kind: kindWord(st.Mode)}
	if st.Nlink > 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return d.linkRemap(where, link, name, fileID, st)
	}
	gk := pathKey{dev: st.Dev, ino: st.Ino}
	gid, ok := d.ghostOf[gk]
	if !ok {
		g, err := d.ghost(where, link, name, st)
		if err != nil {
			return err
		}
		gid = d.newID()
		g.ID = gid
		d.ghostOf[gk] = gid
		d.Ghosts = append(d.Ghosts, *g)
	}
	d.Remaps = append(d.Remaps, &pb.RemapFilePathEntry{
		OrigId:    proto.Uint32(fileID),
		RemapId:   proto.Uint32(gid),
		RemapType: pb.RemapType_GHOST.Enum(),
	})
	return nil
}

// ghost saves what recreating a deleted object takes: its metadata, and
// for a regular file its data.
func (d *Dumper) ghost(where, link, name string, st *unix.Stat_t) (*Ghost, error) {
	g := &Ghost{Entry: &pb.GhostFileEntry{
		Uid:  proto.Uint32(st.Uid),
		Gid:  proto.Uint32(st.Gid),
		Mode: proto.Uint32(st.Mode),
		Dev:  proto.Uint32(uint32(st.Dev)),
		Ino:  proto.Uint64(st.Ino),
		Atim: &pb.Timeval{TvSec: proto.Uint64(uint64(st.Atim.Sec)), TvUsec: proto.Uint64(uint64(st.Atim.Nsec / 1000))},
		Mtim: &pb.Timeval{TvSec: proto.Uint64(uint64(st.Mtim.Sec)), TvUsec: proto.Uint64(uint64(st.Mtim.Nsec / 1000))},
	}}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		// CRIU's rdev is the user-space dev_t, as mknod takes it.
		g.Entry.Rdev = proto.Uint32(uint32(st.Rdev))
		return g, nil
	case unix.S_IFREG:
	default:
		return g, nil
	}
	f, err := os.Open(link)
	if err != nil {
		return nil, fmt.Errorf("%s: open deleted file %s for its content: %w", where, name, err)
	}
	defer f.Close()
	if st.Size < ghostChunksMin {
		g.Content = make([]byte, st.Size)
		if _, err := io.ReadFull(f, g.Content); err != nil {
			return nil, fmt.Errorf("%s: read deleted file %s: %w", where, name, err)
		}
		return g, nil
	}
	g.Entry.Chunks, g.Entry.Size = proto.Bool(true), proto.Uint64(uint64(st.Size))
	// The data extents first (SEEK_DATA/SEEK_HOLE), to count them against
	// the limit before reading any.
	type extent struct{ off, end int64 }
	var exts []extent
	var total int64
	for off := int64(0); off < st.Size; {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole up to the end
		}
		if err != nil {
			return nil, fmt.Errorf("%s: deleted file %s: SEEK_DATA at %d: %w", where, name, off, err)
		}
		hole, err := unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("%s: deleted file %s: SEEK_HOLE at %d: %w", where, name, data, err)
		}
		hole = min(hole, st.Size)
		exts = append(exts, extent{data, hole})
		total += hole - data
		off = hole
	}
	if total > d.Checker.GhostLimit {
		return nil, &GhostLimitError{Where: where, Name: name, Size: total, Limit: d.Checker.GhostLimit}
	}
	for _, e := range exts {
		buf := make([]byte, e.end-e.off)
		if _, err := f.ReadAt(buf, e.off); err != nil {
			return nil, fmt.Errorf("%s: read deleted file %s at %d: %w", where, name, e.off, err)
		}
		g.Chunks = append(g.Chunks, GhostChunk{Off: uint64(e.off), Data: buf})
	}
	return g, nil
}

// linkRemap keeps a deleted file that another hard link still names: a
// new link to the same inode, link_remap.ID where the file was (or in the
// nearest directory above that still exists), which restore opens and
// removes. The file is the same inode after restore, so what is written
// through the fd shows through the other link.
func (d *Dumper) linkRemap(where, link, name string, fileID uint32, st *unix.Stat_t) error {
	k := inodeKey{st.Dev, st.Ino}
	lid, ok := d.linkOf[k]
	if !ok {
		lid = d.newID()
		var path string
		var err error
		for dir := filepath.Dir(name); ; dir = filepath.Dir(dir) {
			path = filepath.Join(dir, fmt.Sprintf("link_remap.%d", lid))
			err = unix.Linkat(unix.AT_FDCWD, link, unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
			if !errors.Is(err, unix.ENOENT) || dir == "/" {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("%s: deleted file %s still has %d other link(s): link it to %s to keep it: %w", where, name, st.Nlink, path, err)
		}
		d.Links = append(d.Links, LinkRemap{Path: path, Dev: st.Dev, Ino: st.Ino})
		d.linkOf[k] = lid
		d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_REG.Enum(), Id: proto.Uint32(lid), Reg: &pb.RegFileEntry{
			Id:    proto.Uint32(lid),
			Flags: proto.Uint32(0),
			Pos:   proto.Uint64(0),
			Fown:  &pb.FownEntry{Uid: proto.Uint32(0), Euid: proto.Uint32(0), Signum: proto.Uint32(0), PidType: proto.Uint32(0), Pid: proto.Uint32(0)},
			Name:  proto.String(path),
			MntId: noMountImages,
			Mode:  proto.Uint32(st.Mode),
		}})
	}
	d.Remaps = append(d.Remaps, &pb.RemapFilePathEntry{
		OrigId:    proto.Uint32(fileID),
		RemapId:   proto.Uint32(lid),
		RemapType: pb.RemapType_LINKED.Enum(),
	})
	return nil
}

// LinkRemap is a link dump made to keep a deleted file.
type LinkRemap struct {
	Path     string
	Dev, Ino uint64
}

// RemoveLinks removes the links this dump made: on a failed dump, whose
// images nobody will restore.
func (d *Dumper) RemoveLinks() {
	for _, l := range d.Links {
		os.Remove(l.Path)
	}
	d.Links = nil
}

// writeGhosts writes ghost-file-N.img for every ghost, as CRIU lays it
// out: the entry, then the data whole, or chunk entries each followed by
// its data.
func (d *Dumper) writeGhosts(dir *images.Dir) error {
	for _, g := range d.Ghosts {
		if err := g.write(dir); err != nil {
			return err
		}
	}
	return nil
}

func (g *Ghost) write(dir *images.Dir) error {
	w, err := dir.Create(images.GhostFile(g.ID), images.KindGhostFile)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.WriteEntry(g.Entry); err != nil {
		return err
	}
	if !g.Entry.GetChunks() {
		if _, err := w.Write(g.Content); err != nil {
			return err
		}
		return w.Close()
	}
	for _, c := range g.Chunks {
		if err := w.WriteEntry(&pb.GhostChunkEntry{Len: proto.Uint64(uint64(len(c.Data))), Off: proto.Uint64(c.Off)}); err != nil {
			return err
		}
		if _, err := w.Write(c.Data); err != nil {
			return err
		}
	}
	return w.Close()
}

// trimDeleted is the path of a link text without the kernel's " (deleted)".
func trimDeleted(target string) (string, bool) {
	return strings.CutSuffix(target, " (deleted)")
}

// ghostHolder returns gockpt's fd on the object ghost id recreates, made
// once however many file entries use it, so that they all share one inode
// (one pipe, for a FIFO): the object is made where it was (its missing
// parent directories too, for the moment), opened, and removed again with
// those directories. Each user then opens it through /proc/self/fd. A name
// taken meanwhile gives way to NAME.cr.ID.ghost beside it, as in CRIU.
func (o *Opener) ghostHolder(id uint32, name string) (*os.File, error) {
	if f, ok := o.ghosts[id]; ok {
		return f, nil
	}
	rd, err := o.Dir.Open(images.GhostFile(id))
	if err != nil {
		return nil, fmt.Errorf("deleted %s: %w", name, err)
	}
	defer rd.Close()
	var g pb.GhostFileEntry
	content, err := rd.ReadEntry(&g)
	if err != nil {
		return nil, err
	}
	made, err := makeParents(filepath.Dir(name))
	defer removeDirs(made)
	if err != nil {
		return nil, fmt.Errorf("recreate deleted %s %s: %w", kindWord(g.GetMode()), name, err)
	}
	f, err := makeGhost(name, &g, content, rd)
	if errors.Is(err, unix.EEXIST) {
		f, err = makeGhost(fmt.Sprintf("%s.cr.%x.ghost", name, id), &g, content, rd)
	}
	if err != nil {
		return nil, fmt.Errorf("recreate deleted %s %s: %w", kindWord(g.GetMode()), name, err)
	}
	o.ghosts[id] = f
	return f, nil
}

// makeParents creates the missing directories of dir (a file deleted
// with its directory) and returns them, deepest last.
func makeParents(dir string) ([]string, error) {
	var missing []string
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o700); err != nil {
			return made, err
		}
		made = append(made, missing[i])
	}
	return made, nil
}

func removeDirs(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		unix.Rmdir(dirs[i])
	}
}

// makeGhost creates the object at path, opens it for gockpt (read-write
// for a FIFO, whose holder keeps the pipe and its data, and a file, which
// gets its data; O_PATH for the rest), gives it its owner, mode and times
// and removes path again.
func makeGhost(path string, g *pb.GhostFileEntry, content []byte, rd *images.Reader) (f *os.File, err error) {
	mode := g.GetMode()
	perm := mode & 0o7777
	var fd int
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		if err := unix.Mknod(path, unix.S_IFIFO|0o600, 0); err != nil {
			return nil, err
		}
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	case unix.S_IFCHR, unix.S_IFBLK:
		if g.Rdev == nil {
			return nil, fmt.Errorf("%s has no device number", rd.Name())
		}
		if err := unix.Mknod(path, mode&unix.S_IFMT|0o600, int(g.GetRdev())); err != nil {
			return nil, err
		}
		fd, err = unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	case unix.S_IFDIR:
		if err := unix.Mkdir(path, 0o700); err != nil {
			return nil, err
		}
		fd, err = unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	case unix.S_IFREG:
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	default:
		return nil, fmt.Errorf("%s: mode %#o is no file, FIFO, device or directory", rd.Name(), mode)
	}
	isDir := mode&unix.S_IFMT == unix.S_IFDIR
	remove := func() error {
		if isDir {
			return unix.Rmdir(path)
		}
		return unix.Unlink(path)
	}
	if err != nil {
		remove()
		return nil, err
	}
	f = os.NewFile(uintptr(fd), path)
	defer func() {
		if err != nil {
			f.Close()
			remove()
		}
	}()
	if mode&unix.S_IFMT == unix.S_IFREG {
		if g.GetChunks() {
			err = writeGhostChunks(f, rd, g.Size)
		} else {
			_, err = f.Write(content)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := unix.Lchown(path, int(g.GetUid()), int(g.GetGid())); err != nil {
		return nil, fmt.Errorf("chown: %w", err)
	}
	if err := unix.Chmod(path, perm); err != nil {
		return nil, fmt.Errorf("chmod: %w", err)
	}
	if g.Atim != nil && g.Mtim != nil {
		ts := []unix.Timeval{
			{Sec: int64(g.Atim.GetTvSec()), Usec: int64(g.Atim.GetTvUsec())},
			{Sec: int64(g.Mtim.GetTvSec()), Usec: int64(g.Mtim.GetTvUsec())},
		}
		if err := unix.Utimes(path, ts); err != nil {
			return nil, fmt.Errorf("utimes: %w", err)
		}
	}
	if err := remove(); err != nil {
		return nil, err
	}
	return f, nil
}

// procPath reopens one of gockpt's fds as a path.
func procPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// reach is the path file entry r is opened by: its name, or, for a
// deleted object, its ghost's holder or the link dump made to it.
func (o *Opener) reach(r *pb.RegFileEntry) (path string, remapped bool, err error) {
	rm := o.Remaps[r.GetId()]
	if rm == nil {
		return r.GetName(), false, nil
	}
	switch rm.GetRemapType() {
	case pb.RemapType_GHOST:
		h, err := o.ghostHolder(rm.GetRemapId(), r.GetName())
		if err != nil {
			return "", true, err
		}
		return procPath(h), true, nil
	case pb.RemapType_LINKED:
		h, err := o.linkedHolder(rm.GetRemapId(), r.GetName())
		if err != nil {
			return "", true, err
		}
		return procPath(h), true, nil
	}
	return "", true, fmt.Errorf("%s: remap type %v is not one gockpt restores (CRIU's --link-remap ghosts and links are)", r.GetName(), rm.GetRemapType())
}

// Remapped tells whether file entry id is a deleted object, reached
// through its ghost or a link rather than by its name.
func (o *Opener) Remapped(id uint32) bool { return o.Remaps[id] != nil }

// RemoveLinks removes the links dump made to deleted files, once the
// restored tasks hold them: CRIU does so at the end of a restore.
func (o *Opener) RemoveLinks() {
	for p := range o.links {
		os.Remove(p)
	}
}

// linkedHolder returns gockpt's fd on the file the link dump made (file
// entry id) reaches, opened under the file's own name as CRIU does: the
// link is linked there (missing parent directories made for the moment),
// opened, and that name removed again, so that the restored fd reads as
// "name (deleted)". If the name is taken, the link itself is opened.
func (o *Opener) linkedHolder(id uint32, name string) (*os.File, error) {
	if f, ok := o.linked[id]; ok {
		return f, nil
	}
	l := o.Files[id].GetReg()
	if l == nil {
		return nil, fmt.Errorf("deleted file %s: its link, file id %d, is not a regular-file entry of files.img", name, id)
	}
	if o.links == nil {
		o.links, o.linked = map[string]bool{}, map[uint32]*os.File{}
	}
	o.links[l.GetName()] = true
	made, err := makeParents(filepath.Dir(name))
	defer removeDirs(made)
	path := l.GetName()
	if err == nil && unix.Link(l.GetName(), name) == nil {
		path = name
		defer unix.Unlink(name)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("deleted file %s: open its link %s: %w", name, l.GetName(), err)
	}
	f := os.NewFile(uintptr(fd), path)
	o.linked[id] = f
	return f, nil
}

// Reopen opens file entry id anew with flags, for a mapping of it: a
// deleted file through its ghost or link, another by its name. The
// caller closes it.
func (o *Opener) Reopen(id uint32, flags int) (*os.File, error) {
	r := o.Files[id].GetReg()
	if r == nil {
		return nil, fmt.Errorf("file id %d is not a regular-file entry of files.img", id)
	}
	path, _, err := o.reach(r)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", r.GetName(), err)
	}
	return f, nil
}
