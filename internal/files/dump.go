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
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/kcmp"
	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// DefaultGhostLimit is CRIU's default --ghost-limit: deleted files up to this
// size have their content saved in the images.
const DefaultGhostLimit = 1 << 20

// PipeData is the content of a pipe's buffer, saved without consuming it.
type PipeData struct {
	Entry *pb.PipeDataEntry
	Data  []byte
}

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

	Files    []*pb.FileEntry
	PipeData []PipeData
	FifoData []PipeData
	Ghosts   []Ghost
	Remaps   []*pb.RemapFilePathEntry
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
	pipes   map[uint64]bool
	ghostOf map[pathKey]uint32
	linkOf  map[inodeKey]uint32
	// needs are the file entries of deleted objects, for Verify.
	needs map[uint32]need
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
		pipes:   map[uint64]bool{},
		ghostOf: map[pathKey]uint32{},
		linkOf:  map[inodeKey]uint32{},
		needs:   map[uint32]need{},
	}
}

func (d *Dumper) newID() uint32 {
	d.nextID++
	return d.nextID
}

// ttyMajors are the character-device majors of terminals: their state
// (termios, session, foreground group) needs a TTY object, not a path.
func isTTY(rdev uint64) bool {
	maj := unix.Major(rdev)
	return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143)
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
	typ, own, err := d.Checker.check(s)
	if err != nil {
		return nil, err
	}
	fe := &pb.FdinfoEntry{Fd: proto.Uint32(uint32(fd)), Flags: proto.Uint32(0), Type: typ.Enum()}
	if s.info.Flags&unix.O_CLOEXEC != 0 {
		fe.Flags = proto.Uint32(unix.FD_CLOEXEC)
	}
	// An fd sharing its open file description with one described earlier
	// (inherited across fork, or dup'ed) names the same object; a new one
	// takes the next id. If describing it fails, so does the dump.
	id, seen := d.ofd(pid, fd, &s.st)
	fe.Id = proto.Uint32(id)
	if seen {
		return fe, nil
	}
	o := object{pid: pid, fd: fd, id: id, own: own, link: s.link, target: s.target, st: &s.st, info: s.info}
	switch typ {
	case pb.FdTypes_EVENTFD:
		err = d.eventfd(o)
	case pb.FdTypes_EVENTPOLL:
		err = d.eventpoll(o)
	case pb.FdTypes_PIPE:
		err = d.pipe(o)
	case pb.FdTypes_FIFO:
		err = d.fifo(o)
	case pb.FdTypes_PIDFD:
		err = d.pidfd(o)
	default:
		err = d.regFile(o)
	}
	if err != nil {
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

// Close releases what the dumper's checker opened.
func (d *Dumper) Close() { d.Checker.Close() }

// noMountImages is the mnt_id of every file entry: in CRIU's images it
// names a mount of mountpoints-N.img, which gockpt does not write; -1 says
// "know nothing about mounts", and CRIU then resolves paths from the root.
var noMountImages = proto.Int32(-1)

// validationSize is a file entry's size, which a restore (CRIU's too)
// checks the file against: only for a regular file, and not for one open
// write-only for appending (a log), which may grow as it likes, as CRIU
// writes it. A directory's size changes with its entries.
func validationSize(st *unix.Stat_t, flags uint32) *uint64 {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || flags&unix.O_ACCMODE == unix.O_WRONLY && flags&unix.O_APPEND != 0 {
		return nil
	}
	return proto.Uint64(uint64(st.Size))
}

// regFile describes a regular file, directory or device opened by path;
// a deleted one is kept as CRIU keeps it (see remap).
func (d *Dumper) regFile(o object) error {
	name, deleted := trimDeleted(o.target)
	rf := &pb.RegFileEntry{
		Id:    proto.Uint32(o.id),
		Flags: proto.Uint32(o.flags()),
		Pos:   proto.Uint64(o.info.Pos),
		Fown:  o.own,
		Name:  proto.String(name),
		MntId: noMountImages,
		Size:  validationSize(o.st, o.flags()),
		Mode:  proto.Uint32(o.st.Mode),
	}
	if deleted {
		if err := d.remap(d.Checker.where(o.pid, o.fd), o.link, name, o.id, o.st); err != nil {
			return err
		}
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_REG.Enum(), Id: proto.Uint32(o.id), Reg: rf})
	return nil
}

// pipe describes one end of a pipe; the pipe's buffered bytes are saved the
// first time any end of it is seen.
func (d *Dumper) pipe(o object) error {
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_PIPE.Enum(), Id: proto.Uint32(o.id), Pipe: &pb.PipeEntry{
		Id:     proto.Uint32(o.id),
		PipeId: proto.Uint32(uint32(o.st.Ino)),
		Flags:  proto.Uint32(o.flags()),
		Fown:   o.own,
	}})
	data, err := d.pipeData(o)
	if data != nil {
		d.PipeData = append(d.PipeData, *data)
	}
	return err
}

// pipeData copies the bytes in the pipe behind o, once per pipe.
func (d *Dumper) pipeData(o object) (*PipeData, error) {
	if d.pipes[o.st.Ino] {
		return nil, nil
	}
	d.pipes[o.st.Ino] = true
	pd, err := peekPipe(o.link, uint32(o.st.Ino))
	if err != nil {
		return nil, fmt.Errorf("task %d fd %d: %s: %w", o.pid, o.fd, o.target, err)
	}
	return pd, nil
}

// fifo describes a named pipe: a fifo entry pointing at a regular-file entry
// for its path, plus its buffered bytes.
//
// A deleted FIFO is a ghost FIFO, as in CRIU: restore makes one, opens it
// and removes it again, and every end of it in the tree is that one pipe.
func (d *Dumper) fifo(o object) error {
	regID := d.newID()
	name, deleted := trimDeleted(o.target)
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_REG.Enum(), Id: proto.Uint32(regID), Reg: &pb.RegFileEntry{
		Id:    proto.Uint32(regID),
		Flags: proto.Uint32(o.flags()),
		Pos:   proto.Uint64(0),
		Fown:  o.own,
		Name:  proto.String(name),
		MntId: noMountImages,
		Mode:  proto.Uint32(o.st.Mode),
	}})
	if deleted {
		if err := d.remap(d.Checker.where(o.pid, o.fd), o.link, name, regID, o.st); err != nil {
			return err
		}
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_FIFO.Enum(), Id: proto.Uint32(o.id), Fifo: &pb.FifoEntry{
		Id:     proto.Uint32(o.id),
		PipeId: proto.Uint32(uint32(o.st.Ino)),
		RegfId: proto.Uint32(regID),
	}})
	data, err := d.pipeData(o)
	if data != nil {
		d.FifoData = append(d.FifoData, *data)
	}
	return err
}

// peekPipe copies the bytes buffered in a pipe without consuming them: a new
// read end is opened through /proc (a pipe inode opens like a FIFO), tee(2)
// duplicates the buffers into a pipe of ours of the same capacity, and we
// read that. The task's pipe is left exactly as it was.
func peekPipe(link string, pipeID uint32) (*PipeData, error) {
	src, err := unix.Open(link, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open a read end: %w", err)
	}
	defer unix.Close(src)
	size, err := unix.FcntlInt(uintptr(src), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return nil, fmt.Errorf("F_GETPIPE_SZ: %w", err)
	}
	var avail int
	avail, err = unix.IoctlGetInt(src, unix.TIOCINQ)
	if err != nil {
		return nil, fmt.Errorf("TIOCINQ: %w", err)
	}
	pd := &PipeData{Entry: &pb.PipeDataEntry{PipeId: proto.Uint32(pipeID), Bytes: proto.Uint32(0), Size: proto.Uint32(uint32(size))}}
	if avail == 0 {
		return pd, nil
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		return nil, fmt.Errorf("size a %d-byte copy pipe: %w", size, err)
	}
	n, err := unix.Tee(src, p[1], avail, unix.SPLICE_F_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("tee: %w", err)
	}
	if int(n) != avail {
		return nil, fmt.Errorf("tee copied %d of %d buffered bytes", n, avail)
	}
	data := make([]byte, n)
	for off := 0; off < len(data); {
		m, err := unix.Read(p[0], data[off:])
		if err != nil {
			return nil, fmt.Errorf("read copied pipe data: %w", err)
		}
		if m == 0 {
			return nil, errors.New("copied pipe data ended early")
		}
		off += m
	}
	pd.Entry.Bytes = proto.Uint32(uint32(n))
	pd.Data = data
	return pd, nil
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
