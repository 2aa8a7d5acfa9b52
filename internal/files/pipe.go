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
	pb "github.com/gockpt/gockpt/proto"
)

// PipeData is the content of a pipe's buffer, saved without consuming it.
type PipeData struct {
	Entry *pb.PipeDataEntry
	Data  []byte
}

// pipeKind is one end of a pipe. The bytes in the pipe go in
// pipes-data.img, once per pipe, whichever end is seen first.
type pipeKind struct {
	kindBase
	buffers pipeBuffers
	// pairs are the pipes restore made, by pipe inode id.
	pairs map[uint32]*pipePair
}

func newPipeKind() Kind {
	return &pipeKind{buffers: newPipeBuffers(images.PipesDataFile, images.KindPipesData), pairs: map[uint32]*pipePair{}}
}

// pipePair is a pipe gockpt made; each end is handed out once, further
// open file descriptions of an end are reopened through /proc.
type pipePair struct {
	ends  [2]*os.File
	used  [2]bool
	extra []*os.File
}

func (*pipeKind) Type() pb.FdTypes { return pb.FdTypes_PIPE }

func (*pipeKind) Match(s *fdState) bool { return strings.HasPrefix(s.target, "pipe:") }

func (k *pipeKind) Dump(d *Dumper, o object) error {
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_PIPE.Enum(), Id: proto.Uint32(o.id), Pipe: &pb.PipeEntry{
		Id:     proto.Uint32(o.id),
		PipeId: proto.Uint32(uint32(o.st.Ino)),
		Flags:  proto.Uint32(o.flags()),
		Fown:   o.own,
	}})
	return k.buffers.save(o)
}

func (k *pipeKind) WriteImages(dir *images.Dir) error { return k.buffers.write(dir) }
func (k *pipeKind) LoadImages(dir *images.Dir) error  { return k.buffers.load(dir) }

// Open hands out an end of the pipe, made (and filled) the first time
// either end is asked for.
func (k *pipeKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	p := fe.GetPipe()
	pp, ok := k.pairs[p.GetPipeId()]
	if !ok {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, err
		}
		pp = &pipePair{ends: [2]*os.File{os.NewFile(uintptr(fds[0]), "pipe-r"), os.NewFile(uintptr(fds[1]), "pipe-w")}}
		k.pairs[p.GetPipeId()] = pp
		if err := k.buffers.fill(fds[1], p.GetPipeId()); err != nil {
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

// Close closes gockpt's ends of the pipes it made.
func (k *pipeKind) Close() {
	for _, p := range k.pairs {
		for _, f := range append(p.ends[:], p.extra...) {
			f.Close()
		}
	}
}

func (*pipeKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetPipe().GetFown(), e.GetPipe().GetFlags()
}

func (*pipeKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("pipe:[%d]", e.GetPipe().GetPipeId())
}

// pipeBuffers are the saved bytes of the pipes (or FIFOs) of one dump or
// restore, in their data image: one entry per pipe, its bytes after it.
type pipeBuffers struct {
	name string
	kind *images.Kind
	seen map[uint64]bool
	// saved is what dump read, in order.
	saved []PipeData
	// data and size are what restore puts back, by pipe inode id.
	data map[uint32][]byte
	size map[uint32]uint32
}

func newPipeBuffers(name string, kind *images.Kind) pipeBuffers {
	return pipeBuffers{name: name, kind: kind, seen: map[uint64]bool{}, data: map[uint32][]byte{}, size: map[uint32]uint32{}}
}

// save copies the bytes in the pipe behind o, once per pipe.
func (b *pipeBuffers) save(o object) error {
	if b.seen[o.st.Ino] {
		return nil
	}
	b.seen[o.st.Ino] = true
	pd, err := peekPipe(o.link, uint32(o.st.Ino))
	if err != nil {
		return fmt.Errorf("task %d fd %d: %s: %w", o.pid, o.fd, o.target, err)
	}
	b.saved = append(b.saved, *pd)
	return nil
}

func (b *pipeBuffers) write(dir *images.Dir) error {
	if len(b.saved) == 0 {
		return nil
	}
	w, err := dir.Create(b.name, b.kind)
	if err != nil {
		return err
	}
	defer w.Close()
	for _, p := range b.saved {
		if err := w.WriteEntry(p.Entry); err != nil {
			return err
		}
		if _, err := w.Write(p.Data); err != nil {
			return err
		}
	}
	return w.Close()
}

func (b *pipeBuffers) load(dir *images.Dir) error {
	if !dir.Exists(b.name) {
		return nil
	}
	r, err := dir.Open(b.name)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var e pb.PipeDataEntry
		extra, err := r.ReadEntry(&e)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		b.data[e.GetPipeId()] = extra
		if e.GetSize() != 0 {
			b.size[e.GetPipeId()] = e.GetSize()
		}
	}
}

// fill sizes pipe id's new pipe (its write end w) as it was and puts its
// saved bytes back.
func (b *pipeBuffers) fill(w int, id uint32) error { return fillPipe(w, b.size[id], b.data[id]) }

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

// pipeEnd returns the read (0) or write (1) end a pipe entry's flags name.
func pipeEnd(flags uint32) int {
	if flags&unix.O_ACCMODE == unix.O_WRONLY {
		return 1
	}
	return 0
}

func (*pipeKind) External(e *pb.FileEntry) string {
	return fmt.Sprintf("pipe:[%d]", e.GetPipe().GetPipeId())
}
