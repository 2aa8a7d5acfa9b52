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
	Files    map[uint32]*pb.FileEntry
	PipeData map[uint32][]byte
	PipeSize map[uint32]uint32
	FifoData map[uint32][]byte
	Remaps   map[uint32]*pb.RemapFilePathEntry
	Dir      *images.Dir
	// StandIns are the processes standing in for processes reaped before
	// the dump, by pidfd file id (DeadPidfds).
	StandIns map[uint32]int

	open  map[uint32]*os.File
	pipes map[uint32]*pipePair // by pipe inode id
	fifos map[uint32]*os.File  // an O_RDWR holder per FIFO, so opens never block
	// ghosts hold the recreated deleted objects, by ghost id; links are
	// the links dump made to deleted files (linked remaps) used.
	ghosts map[uint32]*os.File
	links  map[string]bool
	linked map[uint32]*os.File // by link file id
}

// pipePair is a pipe gockpt made; each end is handed out once, further
// open file descriptions of an end are reopened through /proc.
type pipePair struct {
	ends  [2]*os.File
	used  [2]bool
	extra []*os.File
}

// Close releases gockpt's copies; the tasks keep theirs.
func (o *Opener) Close() {
	for id, f := range o.open {
		if e := o.Files[id]; e.GetType() != pb.FdTypes_PIPE {
			f.Close()
		}
	}
	for _, p := range o.pipes {
		for _, f := range append(p.ends[:], p.extra...) {
			f.Close()
		}
	}
	for _, f := range o.fifos {
		f.Close()
	}
	for _, f := range o.ghosts {
		f.Close()
	}
	for _, f := range o.linked {
		f.Close()
	}
}

// Open returns gockpt's fd for file entry id, building the object on first use.
func (o *Opener) Open(id uint32) (*os.File, error) {
	if o.open == nil {
		o.open, o.pipes, o.fifos, o.ghosts = map[uint32]*os.File{}, map[uint32]*pipePair{}, map[uint32]*os.File{}, map[uint32]*os.File{}
	}
	if f, ok := o.open[id]; ok {
		return f, nil
	}
	e := o.Files[id]
	if e == nil {
		return nil, fmt.Errorf("file id %d is not in files.img", id)
	}
	var f *os.File
	var err error
	switch e.GetType() {
	case pb.FdTypes_REG:
		f, err = o.openReg(e.GetReg())
	case pb.FdTypes_PIPE:
		f, err = o.openPipe(e.GetPipe())
	case pb.FdTypes_FIFO:
		f, err = o.openFifo(e.GetFifo())
	case pb.FdTypes_EVENTFD:
		f, err = openEventfd(e.GetEfd())
	case pb.FdTypes_EVENTPOLL:
		f, err = openEpoll(e.GetEpfd())
	case pb.FdTypes_PIDFD:
		f, err = o.openPidfd(id, e.GetPidfd())
	default:
		return nil, fmt.Errorf("file id %d: gockpt does not restore %v files (an image from another tool or a newer gockpt): dump the tree with this gockpt", id, e.GetType())
	}
	if err != nil {
		return nil, fmt.Errorf("file id %d: %w", id, err)
	}
	o.open[id] = f
	return f, nil
}

// OpenAhead readies gockpt for opening the files ids: its fd table grows
// once to hold them all, and the files Open reaches by their name
// (regular files, directories, devices) are opened several at a time. A
// file it cannot open is left to Open, which says why.
func (o *Opener) OpenAhead(ids []uint32) {
	if o.open == nil {
		o.open, o.pipes, o.fifos, o.ghosts = map[uint32]*os.File{}, map[uint32]*pipePair{}, map[uint32]*os.File{}, map[uint32]*os.File{}
	}
	ReserveFds(len(ids))
	var todo []*pb.RegFileEntry
	seen := map[uint32]bool{}
	for _, id := range ids {
		e := o.Files[id]
		if e.GetType() != pb.FdTypes_REG || o.Remaps[id] != nil || o.open[id] != nil || seen[id] {
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

// openFlags drops flags that would change the file on open, and O_ASYNC:
// the task sets that itself (fasync records the fd number that sets it,
// and SIGIO's si_fd must be the task's, not gockpt's).
func openFlags(flags uint32) int {
	return int(flags)&^(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC|unix.O_NOCTTY|unix.O_ASYNC) | unix.O_CLOEXEC
}

func (o *Opener) openReg(r *pb.RegFileEntry) (*os.File, error) {
	name := r.GetName()
	path, remapped, err := o.reach(r)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, openFlags(r.GetFlags()), 0)
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if r.GetFlags()&unix.O_PATH != 0 {
		return f, nil // no position, no I/O on an O_PATH fd
	}
	if !remapped && r.Size != nil && r.GetMode()&unix.S_IFMT == unix.S_IFREG {
		// Shorter than the position and than it was: cut since. (A
		// /proc or sysfs file says 0 bytes whatever it reads.)
		if fi, err := f.Stat(); err == nil && uint64(fi.Size()) < r.GetPos() && uint64(fi.Size()) < r.GetSize() {
			f.Close()
			return nil, fmt.Errorf("%s is %d bytes now, shorter than the saved position %d: restore needs the file as it was", name, fi.Size(), r.GetPos())
		}
	}
	if r.GetPos() == 0 {
		return f, nil // where a new open starts
	}
	if _, err := unix.Seek(int(f.Fd()), int64(r.GetPos()), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek %s to %d: %w", name, r.GetPos(), err)
	}
	return f, nil
}

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

// pipeEnd returns the read (0) or write (1) end a pipe entry's flags name.
func pipeEnd(flags uint32) int {
	if flags&unix.O_ACCMODE == unix.O_WRONLY {
		return 1
	}
	return 0
}

func (o *Opener) openPipe(p *pb.PipeEntry) (*os.File, error) {
	pp, ok := o.pipes[p.GetPipeId()]
	if !ok {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, err
		}
		pp = &pipePair{ends: [2]*os.File{os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")}}
		o.pipes[p.GetPipeId()] = pp
		if err := fillPipe(fds[1], o.PipeSize[p.GetPipeId()], o.PipeData[p.GetPipeId()]); err != nil {
			return nil, fmt.Errorf("pipe:[%d]: %w", p.GetPipeId(), err)
		}
	}
	end := pipeEnd(p.GetFlags())
	f := pp.ends[end]
	if pp.used[end] {
		// Another open file description of the same end (the task had
		// reopened it through /proc): open one the same way.
		var err error
		f, err = os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", pp.ends[end].Fd()), openFlags(p.GetFlags()), 0)
		if err != nil {
			return nil, fmt.Errorf("pipe:[%d]: another end: %w", p.GetPipeId(), err)
		}
		pp.extra = append(pp.extra, f)
	}
	pp.used[end] = true
	if err := setFlags(f, p.GetFlags()); err != nil {
		return nil, err
	}
	return f, nil
}

// fillPipe sizes a pipe as it was and puts its saved bytes back.
func fillPipe(w int, size uint32, data []byte) error {
	if size != 0 {
		if _, err := unix.FcntlInt(uintptr(w), unix.F_SETPIPE_SZ, int(size)); err != nil {
			return fmt.Errorf("F_SETPIPE_SZ %d: %w", size, err)
		}
	}
	for len(data) > 0 {
		n, err := unix.Write(w, data)
		if err != nil {
			return fmt.Errorf("put back %d buffered bytes: %w", len(data), err)
		}
		data = data[n:]
	}
	return nil
}

func setFlags(f *os.File, flags uint32) error {
	keep := uint32(unix.O_APPEND | unix.O_NONBLOCK | unix.O_DIRECT | unix.O_NOATIME) // O_ASYNC: see openFlags
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, int(flags&keep)); err != nil {
		return fmt.Errorf("F_SETFL %#o: %w", flags, err)
	}
	return nil
}

func (o *Opener) openFifo(fe *pb.FifoEntry) (*os.File, error) {
	reg := o.Files[fe.GetRegfId()].GetReg()
	if reg == nil {
		return nil, fmt.Errorf("fifo: file id %d is not a regular-file entry", fe.GetRegfId())
	}
	path, _, err := o.reach(reg)
	if err != nil {
		return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
	}
	if _, ok := o.fifos[fe.GetPipeId()]; !ok {
		holder, err := os.OpenFile(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
		}
		o.fifos[fe.GetPipeId()] = holder
		if err := fillPipe(int(holder.Fd()), o.PipeSize[fe.GetPipeId()], o.FifoData[fe.GetPipeId()]); err != nil {
			return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
		}
	}
	// With the holder open, neither end blocks on open.
	f, err := os.OpenFile(path, openFlags(reg.GetFlags())|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
	}
	if err := setFlags(f, reg.GetFlags()); err != nil {
		return nil, err
	}
	return f, nil
}

// Owner returns who gets SIGIO for file entry e (F_SETOWN_EX, F_SETSIG)
// and its status flags, for the kinds that keep them; nil for others.
func Owner(e *pb.FileEntry, files map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	switch e.GetType() {
	case pb.FdTypes_REG:
		return e.GetReg().GetFown(), e.GetReg().GetFlags()
	case pb.FdTypes_PIPE:
		return e.GetPipe().GetFown(), e.GetPipe().GetFlags()
	case pb.FdTypes_FIFO:
		r := files[e.GetFifo().GetRegfId()].GetReg()
		return r.GetFown(), r.GetFlags()
	case pb.FdTypes_EVENTFD:
		return e.GetEfd().GetFown(), e.GetEfd().GetFlags()
	case pb.FdTypes_EVENTPOLL:
		return e.GetEpfd().GetFown(), e.GetEpfd().GetFlags()
	case pb.FdTypes_PIDFD:
		return e.GetPidfd().GetFown(), e.GetPidfd().GetFlags()
	}
	return nil, 0
}
