package files

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// fifoKind is a named pipe: a fifo entry pointing at a regular-file entry
// for its path, its buffered bytes in fifo-data.img.
//
// A deleted FIFO is a ghost FIFO, as in CRIU: restore makes one, opens it
// and removes it again, and every end of it in the tree is that one pipe.
type fifoKind struct {
	kindBase
	buffers pipeBuffers
	// holders keep each FIFO open for reading and writing, by pipe inode
	// id, so that opening either end never blocks.
	holders map[uint32]*os.File
}

func newFifoKind() Kind {
	return &fifoKind{buffers: newPipeBuffers(images.FifoDataFile, images.KindFifoData), holders: map[uint32]*os.File{}}
}

func (*fifoKind) Type() pb.FdTypes { return pb.FdTypes_FIFO }

// Match: an O_PATH fd on a FIFO holds a place in the filesystem, not a
// pipe end (regular-file kind).
func (*fifoKind) Match(s *fdState) bool {
	return strings.HasPrefix(s.target, "/") && s.st.Mode&unix.S_IFMT == unix.S_IFIFO && s.info.Flags&unix.O_PATH == 0
}

func (k *fifoKind) Dump(d *Dumper, o object) error {
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
	return k.buffers.save(o)
}

func (k *fifoKind) WriteImages(dir *images.Dir) error { return k.buffers.write(dir) }
func (k *fifoKind) LoadImages(dir *images.Dir) error  { return k.buffers.load(dir) }

func (k *fifoKind) Open(o *Opener, e *pb.FileEntry) (*os.File, error) {
	fe := e.GetFifo()
	reg := o.Files[fe.GetRegfId()].GetReg()
	if reg == nil {
		return nil, fmt.Errorf("fifo: file id %d is not a regular-file entry", fe.GetRegfId())
	}
	path, _, err := o.reach(reg)
	if err != nil {
		return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
	}
	if _, ok := k.holders[fe.GetPipeId()]; !ok {
		holder, err := os.OpenFile(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fifo %s: %w", reg.GetName(), err)
		}
		k.holders[fe.GetPipeId()] = holder
		if err := k.buffers.fill(int(holder.Fd()), fe.GetPipeId()); err != nil {
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

func (k *fifoKind) Close() {
	for _, f := range k.holders {
		f.Close()
	}
}

// Owner is the path entry's: a FIFO end is opened by its path.
func (*fifoKind) Owner(e *pb.FileEntry, files map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	r := files[e.GetFifo().GetRegfId()].GetReg()
	return r.GetFown(), r.GetFlags()
}

func (*fifoKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("fifo pipe:[%d]", e.GetFifo().GetPipeId())
}
