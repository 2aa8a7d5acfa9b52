package files

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
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

	open  map[uint32]*os.File
	pipes map[uint32]*pipePair // by pipe inode id
	fifos map[uint32]*os.File  // an O_RDWR holder per FIFO, so opens never block
	// ghosts holds each recreated deleted file, by ghost id, for the
	// further open file descriptions of it.
	ghosts map[uint32]*os.File
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
}

// Open returns gockpt's fd for file entry id, building the object on first use.
func (o *Opener) Open(id uint32) (*os.File, error) {
	if o.open == nil {
		o.open, o.pipes, o.fifos = map[uint32]*os.File{}, map[uint32]*pipePair{}, map[uint32]*os.File{}
		o.ghosts = map[uint32]*os.File{}
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
	default:
		return nil, fmt.Errorf("file id %d: %v files are not supported yet", id, e.GetType())
	}
	if err != nil {
		return nil, fmt.Errorf("file id %d: %w", id, err)
	}
	o.open[id] = f
	return f, nil
}

// openFlags drops flags that would change the file on open, and O_ASYNC:
// the task sets that itself (fasync records the fd number that sets it,
// and SIGIO's si_fd must be the task's, not gockpt's).
func openFlags(flags uint32) int {
	return int(flags)&^(unix.O_CREAT|unix.O_EXCL|unix.O_TRUNC|unix.O_NOCTTY|unix.O_ASYNC) | unix.O_CLOEXEC
}

func (o *Opener) openReg(r *pb.RegFileEntry) (*os.File, error) {
	name := r.GetName()
	if rm := o.Remaps[r.GetId()]; rm != nil {
		if rm.GetRemapType() != pb.RemapType_GHOST {
			return nil, fmt.Errorf("%s: remap type %v is not supported", name, rm.GetRemapType())
		}
		return o.openGhost(r, rm.GetRemapId())
	}
	fd, err := unix.Open(name, openFlags(r.GetFlags()), 0)
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if r.GetFlags()&unix.O_PATH != 0 {
		return f, nil // no position, no I/O on an O_PATH fd
	}
	if r.Size != nil && r.GetMode()&unix.S_IFMT == unix.S_IFREG {
		// Shorter than the position and than it was: cut since. (A
		// /proc or sysfs file says 0 bytes whatever it reads.)
		if fi, err := f.Stat(); err == nil && uint64(fi.Size()) < r.GetPos() && uint64(fi.Size()) < r.GetSize() {
			f.Close()
			return nil, fmt.Errorf("%s is %d bytes now, shorter than the saved position %d: restore needs the file as it was", name, fi.Size(), r.GetPos())
		}
	}
	if _, err := unix.Seek(int(f.Fd()), int64(r.GetPos()), 0); err != nil && r.GetPos() != 0 {
		f.Close()
		return nil, fmt.Errorf("seek %s to %d: %w", name, r.GetPos(), err)
	}
	return f, nil
}

// openGhost recreates a deleted-but-open file from its saved content, opens
// it as the task had it, and deletes it again.
func (o *Opener) openGhost(r *pb.RegFileEntry, ghostID uint32) (*os.File, error) {
	name := r.GetName()
	if h, ok := o.ghosts[ghostID]; ok {
		// Another open of the same deleted file (opened twice, or by two
		// tasks): the same inode again, through the recreated one.
		return reopenAt(h, r)
	}
	rd, err := o.Dir.Open(fmt.Sprintf("ghost-file-%x.img", ghostID))
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	var g pb.GhostFileEntry
	content, err := rd.ReadEntry(&g)
	if err != nil {
		return nil, err
	}
	// Recreate it under its own name, so that the restored fd reads as
	// "name (deleted)" again; if that name is taken by a new file by now,
	// use a fresh name in the same directory (same filesystem).
	tmp, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		tmp, err = os.CreateTemp(filepath.Dir(name), ".gockpt-ghost-*")
	}
	if err != nil {
		return nil, fmt.Errorf("recreate deleted file %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
		}
	}()
	if g.GetChunks() {
		err = writeGhostChunks(tmp, rd, g.Size)
	} else {
		_, err = tmp.Write(content)
	}
	if err != nil {
		return nil, fmt.Errorf("recreate deleted file %s: %w", name, err)
	}
	tmp.Chmod(os.FileMode(g.GetMode() & 0o7777))
	os.Chown(tmp.Name(), int(g.GetUid()), int(g.GetGid()))
	f, err := reopenAt(tmp, r)
	if err != nil {
		return nil, err
	}
	keep = true
	o.ghosts[ghostID] = tmp
	return f, nil
}

// reopenAt opens file h once more (a new open file description of the
// same inode, through /proc, which works for a deleted file too) with the
// entry's flags and position.
func reopenAt(h *os.File, r *pb.RegFileEntry) (*os.File, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", h.Fd()), openFlags(r.GetFlags()), 0)
	if err != nil {
		return nil, fmt.Errorf("reopen deleted file %s: %w", r.GetName(), err)
	}
	f := os.NewFile(uintptr(fd), r.GetName())
	if _, err := unix.Seek(fd, int64(r.GetPos()), 0); err != nil && r.GetFlags()&unix.O_PATH == 0 {
		f.Close()
		return nil, fmt.Errorf("seek deleted file %s to %d: %w", r.GetName(), r.GetPos(), err)
	}
	return f, nil
}

// writeGhostChunks writes a ghost file stored in chunks, as CRIU stores
// sparse files: each chunk entry says where its data goes; what no chunk
// covers stays a hole, up to the file's size (when the image gives it).
func writeGhostChunks(f *os.File, rd *images.Reader, size *uint64) error {
	for {
		var c pb.GhostChunkEntry
		data, err := rd.ReadEntry(&c)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if uint64(len(data)) != c.GetLen() || c.GetOff() > math.MaxInt64-c.GetLen() {
			return fmt.Errorf("%s: chunk at %d of %d bytes holds %d", rd.Name(), c.GetOff(), c.GetLen(), len(data))
		}
		if _, err := f.WriteAt(data, int64(c.GetOff())); err != nil {
			return err
		}
	}
	if size == nil {
		return nil
	}
	if *size > math.MaxInt64 {
		return fmt.Errorf("%s: size %d", rd.Name(), *size)
	}
	return f.Truncate(int64(*size))
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
	if _, ok := o.fifos[fe.GetPipeId()]; !ok {
		holder, err := os.OpenFile(reg.GetName(), unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
		}
		o.fifos[fe.GetPipeId()] = holder
		if err := fillPipe(int(holder.Fd()), o.PipeSize[fe.GetPipeId()], o.FifoData[fe.GetPipeId()]); err != nil {
			return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
		}
	}
	// With the holder open, neither end blocks on open.
	f, err := os.OpenFile(reg.GetName(), openFlags(reg.GetFlags())|unix.O_NONBLOCK, 0)
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
	}
	return nil, 0
}
