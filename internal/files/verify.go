package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// RemapError says what a deleted object's file entry lacks in the images
// for restore to bring it back.
type RemapError struct {
	ID  uint32 // the file entry
	Msg string
}

func (e *RemapError) Error() string { return e.Msg }

// CheckRemaps checks, from the images alone, that every deleted object of
// remap-fpath.img can be brought back: a ghost's image is there, whole,
// and of the kind of file its entry had (a FIFO's ghost is the one pipe its
// FIFO entries name; a device's has its number); a linked remap names a
// file entry. Dump runs it on the images it wrote before it lets the tree
// go, restore before it creates any task.
func CheckRemaps(dir *images.Dir, files map[uint32]*pb.FileEntry, remaps map[uint32]*pb.RemapFilePathEntry) error {
	checked := map[uint32]bool{}
	for id, r := range remaps {
		f := files[id]
		if f == nil {
			return &RemapError{id, fmt.Sprintf("remap-fpath.img names file id %d, which is not in files.img", id)}
		}
		name := f.GetReg().GetName()
		switch r.GetRemapType() {
		case pb.RemapType_LINKED:
			if files[r.GetRemapId()].GetReg() == nil {
				return &RemapError{id, fmt.Sprintf("file id %d (%s) is a deleted file reached through file id %d, which is not a regular-file entry of files.img", id, name, r.GetRemapId())}
			}
			continue
		case pb.RemapType_GHOST:
		default:
			continue
		}
		g, err := readGhost(dir, r.GetRemapId(), checked[r.GetRemapId()])
		if err != nil {
			return &RemapError{id, fmt.Sprintf("file id %d (%s) is a deleted %s whose content should be in %s: %v", id, name, kindWord(f.GetReg().GetMode()), images.GhostFile(r.GetRemapId()), err)}
		}
		checked[r.GetRemapId()] = true
		if m := f.GetReg().Mode; m != nil && *m&unix.S_IFMT != g.GetMode()&unix.S_IFMT {
			return &RemapError{id, fmt.Sprintf("file id %d (%s) is a %s, but its ghost %s holds a %s", id, name, kindWord(*m), images.GhostFile(r.GetRemapId()), kindWord(g.GetMode()))}
		}
		switch g.GetMode() & unix.S_IFMT {
		case unix.S_IFCHR, unix.S_IFBLK:
			if g.Rdev == nil {
				return &RemapError{id, fmt.Sprintf("file id %d (%s) is a deleted device whose ghost %s has no device number", id, name, images.GhostFile(r.GetRemapId()))}
			}
		case unix.S_IFIFO:
			if !fifoUses(files, id) {
				return &RemapError{id, fmt.Sprintf("file id %d (%s) is a deleted FIFO no FIFO entry of files.img names", id, name)}
			}
		}
	}
	return nil
}

func fifoUses(files map[uint32]*pb.FileEntry, regID uint32) bool {
	for _, f := range files {
		if f.GetFifo() != nil && f.GetFifo().GetRegfId() == regID {
			return true
		}
	}
	return false
}

// readGhost reads ghost id's entry and, the first time, all its data, so
// that a short or damaged image shows.
func readGhost(dir *images.Dir, id uint32, seen bool) (*pb.GhostFileEntry, error) {
	name := images.GhostFile(id)
	if !dir.Exists(name) {
		return nil, errors.New("it is missing")
	}
	rd, err := dir.Open(name)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var g pb.GhostFileEntry
	if _, err := rd.ReadEntry(&g); err != nil {
		return nil, err
	}
	if seen || !g.GetChunks() {
		return &g, nil
	}
	for {
		var c pb.GhostChunkEntry
		data, err := rd.ReadEntry(&c)
		if err == io.EOF {
			return &g, nil
		}
		if err != nil {
			return nil, err
		}
		if uint64(len(data)) != c.GetLen() || g.Size != nil && c.GetOff()+c.GetLen() > g.GetSize() {
			return nil, fmt.Errorf("a chunk at %d of %d bytes holds %d bytes, in a file of %d", c.GetOff(), c.GetLen(), len(data), g.GetSize())
		}
	}
}

// Need is a deleted object of the tree and who holds it, for messages.
type Need struct {
	Where string // "task 5 (prog) fd 3"
	Name  string
	Kind  string // "file", "FIFO", "directory", "device"
}

// Verify checks the images written in dir against what this dumper saw
// in the tree: every deleted object has its remap entry, its ghost image
// holds all the data read from it (or the link made to it is still that
// inode), and CheckRemaps passes. It names the task and fd of the first
// object restore would not bring back.
func (d *Dumper) Verify(dir *images.Dir) error {
	fail := func(n need, format string, args ...any) error {
		return fmt.Errorf("%s: deleted %s %s: restore would not bring it back: %s; the tree was left running and the dump not completed (no inventory.img): dump again", n.where, n.kind, n.name, fmt.Sprintf(format, args...))
	}
	files := map[uint32]*pb.FileEntry{}
	remaps := map[uint32]*pb.RemapFilePathEntry{}
	if err := readAll(dir, images.FilesFile, func() proto.Message { return &pb.FileEntry{} }, func(m proto.Message) {
		files[m.(*pb.FileEntry).GetId()] = m.(*pb.FileEntry)
	}); err != nil && len(d.needs) > 0 {
		return fail(d.needs[sortedIDs(d.needs)[0]], "%v", err)
	}
	if err := readAll(dir, images.RemapFpathFile, func() proto.Message { return &pb.RemapFilePathEntry{} }, func(m proto.Message) {
		remaps[m.(*pb.RemapFilePathEntry).GetOrigId()] = m.(*pb.RemapFilePathEntry)
	}); err != nil && len(d.needs) > 0 {
		return fail(d.needs[sortedIDs(d.needs)[0]], "%v", err)
	}
	for _, id := range sortedIDs(d.needs) {
		n := d.needs[id]
		if !dir.Exists(images.RemapFpathFile) {
			return fail(n, "remap-fpath.img is missing")
		}
		if remaps[id] == nil {
			return fail(n, "remap-fpath.img has no entry for its file id %d", id)
		}
	}
	if err := CheckRemaps(dir, files, remaps); err != nil {
		var re *RemapError
		if errors.As(err, &re) {
			if n, ok := d.needs[re.ID]; ok {
				return fail(n, "%s", re.Msg)
			}
		}
		return fmt.Errorf("%w; the tree was left running and the dump not completed (no inventory.img): dump again", err)
	}
	for _, g := range d.Ghosts {
		if err := g.verify(dir); err != nil {
			for id, r := range remaps {
				if r.GetRemapType() == pb.RemapType_GHOST && r.GetRemapId() == g.ID {
					if n, ok := d.needs[id]; ok {
						return fail(n, "%s: %v", images.GhostFile(g.ID), err)
					}
				}
			}
			return fmt.Errorf("%s: %w", images.GhostFile(g.ID), err)
		}
	}
	for _, l := range d.Links {
		var st unix.Stat_t
		if err := unix.Lstat(l.Path, &st); err == nil && st.Dev == l.Dev && st.Ino == l.Ino {
			continue
		}
		lid := d.linkOf[inodeKey{l.Dev, l.Ino}]
		for fid, r := range remaps {
			if n, ok := d.needs[fid]; ok && r.GetRemapType() == pb.RemapType_LINKED && r.GetRemapId() == lid {
				return fail(n, "the link %s dump made to it is gone or names another file", l.Path)
			}
		}
		return fmt.Errorf("the link %s dump made to a deleted file is gone or names another file; the tree was left running and the dump not completed (no inventory.img): dump again", l.Path)
	}
	return nil
}

// verify reads ghost g back and compares its data with what was read
// from the deleted file.
func (g *Ghost) verify(dir *images.Dir) error {
	rd, err := dir.Open(images.GhostFile(g.ID))
	if err != nil {
		return err
	}
	defer rd.Close()
	var e pb.GhostFileEntry
	content, err := rd.ReadEntry(&e)
	if err != nil {
		return err
	}
	if e.GetChunks() != g.Entry.GetChunks() || e.GetMode() != g.Entry.GetMode() {
		return fmt.Errorf("its entry says mode %#o chunks %v, the file was mode %#o", e.GetMode(), e.GetChunks(), g.Entry.GetMode())
	}
	if !e.GetChunks() {
		if len(content) != len(g.Content) {
			return fmt.Errorf("it holds %d bytes of the file's %d", len(content), len(g.Content))
		}
		if !bytes.Equal(content, g.Content) {
			return fmt.Errorf("its %d bytes are not the file's", len(content))
		}
		return nil
	}
	var n int
	err = eachGhostChunk(rd, func(c *pb.GhostChunkEntry, data []byte) error {
		if n >= len(g.Chunks) || c.GetOff() != g.Chunks[n].Off || !bytes.Equal(data, g.Chunks[n].Data) {
			return fmt.Errorf("chunk %d differs from the file's data", n)
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if n != len(g.Chunks) {
		return fmt.Errorf("it holds %d of the file's %d chunks of data", n, len(g.Chunks))
	}
	return nil
}

// readAll reads every entry of image name (none if it does not exist).
func readAll(dir *images.Dir, name string, mk func() proto.Message, add func(proto.Message)) error {
	if !dir.Exists(name) {
		return nil
	}
	rd, err := dir.Open(name)
	if err != nil {
		return err
	}
	defer rd.Close()
	for {
		m := mk()
		if _, err := rd.ReadEntry(m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		add(m)
	}
}

func sortedIDs(m map[uint32]need) []uint32 {
	ids := make([]uint32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
