package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

// regKind is a file opened by its path: a regular file, a directory, a
// device other than a terminal (as in CRIU's images, devices are regular
// file entries), or any O_PATH fd. A deleted one is kept as CRIU keeps it,
// as a ghost or a linked remap (ghost.go).
type regKind struct{ kindBase }

func newRegKind() Kind { return &regKind{} }

func (*regKind) Type() pb.FdTypes { return pb.FdTypes_REG }

// Match: a path, but not a memfd (whose link text starts with "/memfd:").
// An O_PATH fd holds a place in the filesystem, not an open file: whatever
// is there (FIFO, device, socket, symlink) reopens by path with O_PATH,
// without being opened for I/O. Otherwise FIFOs are fifoKind's, and
// terminals and sockets bound to a path are not opened by their path.
func (*regKind) Match(s *fdState) bool {
	if !strings.HasPrefix(s.target, "/") || strings.HasPrefix(s.target, "/memfd:") {
		return false
	}
	if s.info.Flags&unix.O_PATH != 0 {
		return true
	}
	switch s.st.Mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK:
		return false
	case unix.S_IFCHR:
		return !isTTY(s.st.Rdev)
	}
	return true
}

// Check refuses a deleted file too big to keep.
func (*regKind) Check(c *Checker, s *fdState) error {
	name, deleted := strings.CutSuffix(s.target, " (deleted)")
	if deleted && s.st.Nlink == 0 && s.st.Mode&unix.S_IFMT == unix.S_IFREG && GhostBytes(&s.st) > c.GhostLimit {
		return &GhostLimitError{Where: c.where(s.pid, s.fd), Name: name, Size: GhostBytes(&s.st), Limit: c.GhostLimit}
	}
	return nil
}

func (*regKind) Dump(d *Dumper, o object) error {
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

func (*regKind) Open(o *Opener, e *pb.FileEntry) (*os.File, error) { return o.openReg(e.GetReg()) }

// Late: a file under /proc/PID/ (or /proc/PID/task/TID/) of a task of the
// tree reopens by its path (the restored PIDs are the same), but only once
// that task exists.
func (*regKind) Late(o *Opener, e *pb.FileEntry) bool {
	rest, ok := strings.CutPrefix(e.GetReg().GetName(), "/proc/")
	if !ok || o.InTree == nil {
		return false
	}
	num, _, _ := strings.Cut(rest, "/")
	pid, err := strconv.Atoi(num)
	return err == nil && o.InTree(pid)
}

func (*regKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetReg().GetFown(), e.GetReg().GetFlags()
}

func (*regKind) Describe(e *pb.FileEntry) string { return e.GetReg().GetName() }

// isTTY tells the character-device majors of terminals: their state
// (termios, session, foreground group) needs a TTY object, not a path.
func isTTY(rdev uint64) bool {
	maj := unix.Major(rdev)
	return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143)
}

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

func (*regKind) External(e *pb.FileEntry) string {
	return strings.TrimPrefix(e.GetReg().GetName(), "/")
}
