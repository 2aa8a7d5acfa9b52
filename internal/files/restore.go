package files

import (
	"fmt"
	"io"
	"math"
	"os"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/par"
	pb "github.com/gockpt/gockpt/proto"
)

// Opener builds, in gockpt, the open file descriptions that restored tasks
// take over with pidfd_getfd: one per file entry, shared by every fd that
// had it, so shared positions and pipe ends come out shared.
type Opener struct {
	Files  map[uint32]*pb.FileEntry
	Remaps map[uint32]*pb.RemapFilePathEntry
	Dir    *images.Dir
	// InTree tells the tasks and threads of the tree being restored.
	InTree func(pid int) bool
	// ExtUnixSk lets a dgram unix socket connect to its peer outside the
	// tree by name (--ext-unix-sk).
	ExtUnixSk bool
	// ShellJob gives a shell job's terminal fds restore's own terminal
	// (--shell-job).
	ShellJob bool
	// TCPEstablished makes established TCP connections again
	// (--tcp-established); TCPClose makes them closed (--tcp-close).
	TCPEstablished, TCPClose bool

	kinds *kindSet
	open  map[uint32]*os.File
	// inherited are the files --inherit-fd gave, by their key.
	inherited map[string]*os.File
	// ghosts hold the recreated deleted objects, by ghost id; links are
	// the links dump made to deleted files (linked remaps) used.
	ghosts map[uint32]*os.File
	links  map[string]bool
	linked map[uint32]*os.File // by link file id
}

// NewOpener returns an opener of the file entries files, reading what the
// kinds of files keep in images of dir; remaps are the deleted files.
func NewOpener(dir *images.Dir, files map[uint32]*pb.FileEntry, remaps map[uint32]*pb.RemapFilePathEntry) (*Opener, error) {
	o := &Opener{Files: files, Remaps: remaps, Dir: dir, kinds: newKindSet(),
		open: map[uint32]*os.File{}, ghosts: map[uint32]*os.File{}}
	for _, k := range o.kinds.list {
		if err := k.LoadImages(dir); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Close releases gockpt's copies; the tasks keep theirs.
func (o *Opener) Close() {
	for _, f := range o.open {
		f.Close()
	}
	for _, k := range o.kinds.list {
		k.Close()
	}
	for _, f := range o.ghosts {
		f.Close()
	}
	for _, f := range o.inherited {
		f.Close()
	}
	for _, f := range o.linked {
		f.Close()
	}
}

// kindOf is the kind of file entry id.
func (o *Opener) kindOf(id uint32) (*pb.FileEntry, Kind, error) {
	e := o.Files[id]
	if e == nil {
		return nil, nil, fmt.Errorf("file id %d is not in files.img", id)
	}
	k := o.kinds.byType[e.GetType()]
	if k == nil {
		return nil, nil, fmt.Errorf("file id %d: gockpt does not restore %v files (an image from another tool or a newer gockpt): dump the tree with this gockpt", id, e.GetType())
	}
	return e, k, nil
}

// Open returns gockpt's fd for file entry id, building the object on first use.
func (o *Opener) Open(id uint32) (*os.File, error) {
	if f, ok := o.open[id]; ok {
		return f, nil
	}
	e, k, err := o.kindOf(id)
	if err != nil {
		return nil, err
	}
	if in := o.inheritedFor(k, id); in != nil {
		fd, err := unix.FcntlInt(in.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), in.Name())
		o.open[id] = f
		return f, nil
	}
	f, err := k.Open(o, e)
	if err != nil {
		return nil, fmt.Errorf("file id %d: %w", id, err)
	}
	o.open[id] = f
	return f, nil
}

// Late tells a file that can only be opened once every task and thread of
// the tree exists (a pidfd, a file under /proc/PID of the tree).
func (o *Opener) Late(id uint32) bool {
	e, k, err := o.kindOf(id)
	return err == nil && k.Late(o, e)
}

// AfterFds does, inside task t, what file entry id needs once every fd of
// t is in place (an epoll's targets); fd is its number in t. Restore asks
// it of the first task holding the file.
func (o *Opener) AfterFds(t Task, fd uint32, id uint32) error {
	e, k, err := o.kindOf(id)
	if err != nil {
		return err
	}
	return k.AfterFds(t, fd, e)
}

// ReopenIn does, inside task t, what file entry id needs in every task that
// holds it (fd is its number in t).
func (o *Opener) ReopenIn(t Task, fd uint32, id uint32) error {
	e, k, err := o.kindOf(id)
	if err != nil {
		return err
	}
	return k.Reopen(t, fd, e)
}

// OpenAhead readies gockpt for opening the files ids: its fd table grows
// once to hold them all, and the files Open reaches by their name
// (regular files, directories, devices) are opened several at a time. A
// file it cannot open is left to Open, which says why.
func (o *Opener) OpenAhead(ids []uint32) {
	ReserveFds(len(ids))
	var todo []*pb.RegFileEntry
	seen := map[uint32]bool{}
	for _, id := range ids {
		e := o.Files[id]
		if e.GetType() != pb.FdTypes_REG || o.Remaps[id] != nil || o.open[id] != nil || seen[id] || o.inheritedFor(o.kinds.byType[pb.FdTypes_REG], id) != nil {
			continue
		}
		seen[id] = true
		todo = append(todo, e.GetReg())
	}
	if len(todo) < openAheadMin {
		return
	}
	got := make([]*os.File, len(todo))
	par.Each(len(todo), openAheadWorkers, func(i int) {
		if f, err := o.openReg(todo[i]); err == nil {
			got[i] = f
		}
	})
	for i, f := range got {
		if f != nil {
			o.open[todo[i].GetId()] = f
		}
	}
}

// ReserveFds grows gockpt's fd table to hold n more fds in one step. The
// kernel grows a table that threads share (Go's do) by doubling it, each
// time waiting for an RCU grace period, milliseconds: 10,000 opens one
// after another would wait about ten times.
func ReserveFds(n int) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	// fd is the lowest free number: the n new fds go from there on. An fd
	// at or above fd+n (never one in use: F_DUPFD takes a free number)
	// makes the table that big.
	if top, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, fd+n); err == nil {
		unix.Close(top)
	}
}

const (
	// openAheadMin: fewer files than this open faster one by one.
	openAheadMin = 32
	// openAheadWorkers open files at once: each open is a path walk.
	openAheadWorkers = 2
)

// writeGhostChunks writes a ghost file stored in chunks, as CRIU stores
// sparse files: each chunk entry says where its data goes; what no chunk
// covers stays a hole, up to the file's size (when the image gives it).
func writeGhostChunks(f *os.File, rd *images.Reader, size *uint64) error {
	err := eachGhostChunk(rd, func(c *pb.GhostChunkEntry, data []byte) error {
		_, err := f.WriteAt(data, int64(c.GetOff()))
		return err
	})
	if err != nil {
		return err
	}
	if size == nil {
		return nil
	}
	if *size > math.MaxInt64 {
		return fmt.Errorf("%s: size %d", rd.Name(), *size)
	}
	return f.Truncate(int64(*size))
}

// eachGhostChunk calls fn for each chunk entry left in ghost image rd,
// with its data, after checking that the data is what the entry says.
func eachGhostChunk(rd *images.Reader, fn func(c *pb.GhostChunkEntry, data []byte) error) error {
	for {
		var c pb.GhostChunkEntry
		data, err := rd.ReadEntry(&c)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if uint64(len(data)) != c.GetLen() || c.GetOff() > math.MaxInt64-c.GetLen() {
			return fmt.Errorf("%s: chunk at %d of %d bytes holds %d", rd.Name(), c.GetOff(), c.GetLen(), len(data))
		}
		if err := fn(&c, data); err != nil {
			return err
		}
	}
}
