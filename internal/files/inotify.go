package files

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// inotifyKind is an inotify instance with its watches. Each watch is
// kept as fdinfo shows it (inode, device, mask, file handle) and restored
// by file handle: open_by_handle_at on a mount of the same filesystem,
// then inotify_add_watch on /proc/self/fd/N, until the kernel hands out
// the same watch descriptor. Events already queued are not kept (nor by
// CRIU): an instance with unread events is refused.
type inotifyKind struct {
	kindBase
	mounts map[uint32]*os.File // restore: a mount of each device, by kernel dev
}

func newInotifyKind() Kind { return &inotifyKind{mounts: map[uint32]*os.File{}} }

func (*inotifyKind) Type() pb.FdTypes { return pb.FdTypes_INOTIFY }

func (*inotifyKind) Match(s *fdState) bool { return s.target == "anon_inode:inotify" }

// fhandleWords is how many 64-bit words CRIU's fh_entry handle holds
// (MAX_HANDLE_SZ, 128 bytes).
const fhandleWords = 16

// parseInotifyWd reads one watch line of an inotify fdinfo:
// "inotify wd:1 ino:3c4a3 sdev:fe00000 mask:100 ignored_mask:0
// fhandle-bytes:8 fhandle-type:1 f_handle:a3c4030000000000", all hex.
// A filesystem that gives no file handle leaves out the fhandle fields:
// the entry then has no FHandle.
func parseInotifyWd(line string) (*pb.InotifyWdEntry, error) {
	rest, ok := strings.CutPrefix(line, "inotify ")
	if !ok {
		return nil, errors.New("not an inotify watch line")
	}
	vals, err := markFields(rest)
	if err != nil {
		return nil, err
	}
	var n [5]uint64
	for i, k := range []string{"wd", "ino", "sdev", "mask", "ignored_mask"} {
		bits := 32
		if k == "ino" {
			bits = 64
		}
		v, err := vals.hex(k, bits)
		if err != nil {
			return nil, err
		}
		n[i] = v
	}
	if n[0] == 0 || n[0] > 1<<31-1 {
		return nil, fmt.Errorf("wd %d out of range", n[0])
	}
	w := &pb.InotifyWdEntry{Wd: proto.Uint32(uint32(n[0])), IIno: proto.Uint64(n[1]), SDev: proto.Uint32(uint32(n[2])),
		Mask: proto.Uint32(uint32(n[3])), IgnoredMask: proto.Uint32(uint32(n[4]))}
	if w.FHandle, err = vals.fhandle(); err != nil {
		return nil, err
	}
	return w, nil
}

// markVals are the "key:value" words of an fsnotify fdinfo line (an
// inotify watch, a fanotify mark).
type markVals map[string]string

func markFields(rest string) (markVals, error) {
	vals := markVals{}
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("field %q has no ':'", f)
		}
		if _, dup := vals[k]; dup {
			return nil, fmt.Errorf("field %s twice", k)
		}
		vals[k] = v
	}
	return vals, nil
}

// hex is the value of key, a hex number of at most bits bits.
func (vals markVals) hex(key string, bits int) (uint64, error) {
	v, ok := vals[key]
	if !ok {
		return 0, fmt.Errorf("no %s", key)
	}
	n, err := strconv.ParseUint(v, 16, bits)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", key, v, err)
	}
	return n, nil
}

// fhandle is the file handle the fields give (fhandle-bytes, fhandle-type,
// f_handle); nil when there is none (a filesystem without file handles).
func (vals markVals) fhandle() (*pb.FhEntry, error) {
	if _, ok := vals["f_handle"]; !ok {
		return nil, nil
	}
	size, err := vals.hex("fhandle-bytes", 32)
	if err != nil {
		return nil, err
	}
	typ, err := vals.hex("fhandle-type", 32)
	if err != nil {
		return nil, err
	}
	raw, err := hex.DecodeString(vals["f_handle"])
	if err != nil {
		return nil, fmt.Errorf("f_handle %q: %w", vals["f_handle"], err)
	}
	if uint64(len(raw)) != size || size == 0 || size > fhandleWords*8 {
		return nil, fmt.Errorf("f_handle of %d bytes, fhandle-bytes %d (at most %d)", len(raw), size, fhandleWords*8)
	}
	return &pb.FhEntry{Bytes: proto.Uint32(uint32(size)), Type: proto.Uint32(uint32(typ)), Handle: handleWords(raw)}, nil
}

// handleWords packs handle bytes into CRIU's 16 little-endian words.
func handleWords(raw []byte) []uint64 {
	var b [fhandleWords * 8]byte
	copy(b[:], raw)
	words := make([]uint64, fhandleWords)
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return words
}

// handleBytes unpacks them.
func handleBytes(fh *pb.FhEntry) ([]byte, error) {
	if fh == nil {
		return nil, errors.New("no file handle")
	}
	n := fh.GetBytes()
	if n == 0 || uint64(n) > uint64(len(fh.GetHandle()))*8 {
		return nil, fmt.Errorf("file handle of %d bytes in %d words", n, len(fh.GetHandle()))
	}
	b := make([]byte, len(fh.GetHandle())*8)
	for i, w := range fh.GetHandle() {
		binary.LittleEndian.PutUint64(b[i*8:], w)
	}
	return b[:n], nil
}

// inotifyWatches reads every watch of an inotify fd's fdinfo.
func inotifyWatches(s *fdState) ([]*pb.InotifyWdEntry, error) {
	var out []*pb.InotifyWdEntry
	for _, line := range s.info.Entries {
		if !strings.HasPrefix(line, "inotify ") {
			continue
		}
		w, err := parseInotifyWd(line)
		if err != nil {
			return nil, fmt.Errorf("task %d fd %d: fdinfo line %q: %w", s.pid, s.fd, line, err)
		}
		out = append(out, w)
	}
	return out, nil
}

// Check refuses unread events (restore could not queue them again) and
// a watch restore could not set again: on a filesystem without file
// handles, or on a file its handle no longer opens (deleted).
func (*inotifyKind) Check(c *Checker, s *fdState) error {
	ws, err := inotifyWatches(s)
	if err != nil {
		return err
	}
	dup, err := c.dup(s.pid, s.fd)
	if err != nil {
		return err
	}
	queued, err := unix.IoctlGetInt(dup, unix.TIOCINQ) // FIONREAD
	unix.Close(dup)
	if err != nil {
		return fmt.Errorf("task %d fd %d: FIONREAD: %w", s.pid, s.fd, err)
	}
	if queued > 0 {
		r := c.refuse(s, support.InotifyQueued, s.target)
		r.Detail = fmt.Sprintf("%d bytes of events not read", queued)
		return r
	}
	mounts := map[uint32]*os.File{}
	defer closeMounts(mounts)
	for _, w := range ws {
		f, err := openWatched(mounts, w)
		if err != nil {
			r := c.refuse(s, support.InotifyUnreachable, s.target)
			r.Detail = fmt.Sprintf("watch %d on inode %d of device %d:%d: %v", w.GetWd(), w.GetIIno(), w.GetSDev()>>20, w.GetSDev()&0xfffff, err)
			return r
		}
		f.Close()
	}
	return nil
}

func closeMounts(m map[uint32]*os.File) {
	for _, f := range m {
		f.Close()
	}
}

// openWatched opens the file a watch is on.
func openWatched(mounts map[uint32]*os.File, w *pb.InotifyWdEntry) (*os.File, error) {
	return openInode(mounts, w.GetSDev(), w.GetIIno(), w.GetFHandle())
}

// openInode opens inode ino of device dev by its file handle (O_PATH),
// through a mount of its filesystem found by the device number; failing
// that (an image of CRIU's from another boot of a tmpfs), by the path the
// image gives, if it is the same inode.
func openInode(mounts map[uint32]*os.File, dev uint32, ino uint64, fh *pb.FhEntry) (*os.File, error) {
	f, err := openByHandle(mounts, dev, ino, fh)
	if err == nil || fh.GetPath() == "" {
		return f, err
	}
	fd, perr := unix.Open(fh.GetPath(), unix.O_PATH|unix.O_CLOEXEC, 0)
	if perr != nil {
		return nil, err
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Ino != ino {
		unix.Close(fd)
		return nil, fmt.Errorf("%w; %s is another file (inode %d)", err, fh.GetPath(), st.Ino)
	}
	return os.NewFile(uintptr(fd), "watched"), nil
}

func openByHandle(mounts map[uint32]*os.File, dev uint32, ino uint64, fh *pb.FhEntry) (*os.File, error) {
	h, err := handleBytes(fh)
	if err != nil {
		return nil, fmt.Errorf("its filesystem gives no file handle")
	}
	m, err := mountOf(mounts, dev)
	if err != nil {
		return nil, err
	}
	fd, err := unix.OpenByHandleAt(int(m.Fd()), unix.NewFileHandle(int32(fh.GetType()), h), unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open_by_handle_at: %w", err)
	}
	f := os.NewFile(uintptr(fd), "watched")
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != ino {
		f.Close()
		return nil, fmt.Errorf("its file handle opens inode %d", st.Ino)
	}
	return f, nil
}

// mountOf opens (once) the root of a mount of the filesystem on kernel
// device dev (major in the top 12 bits, minor in the low 20).
func mountOf(mounts map[uint32]*os.File, dev uint32) (*os.File, error) {
	if f, ok := mounts[dev]; ok {
		return f, nil
	}
	ms, err := proc.ReadMountinfo(os.Getpid())
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Major != dev>>20 || m.Minor != dev&0xfffff {
			continue
		}
		f, err := os.OpenFile(m.MountPoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) // not O_PATH: open_by_handle_at refuses one
		if err != nil {
			continue
		}
		mounts[dev] = f
		return f, nil
	}
	return nil, fmt.Errorf("no mount of device %d:%d in gockpt's mount namespace", dev>>20, dev&0xfffff)
}

// Dump keeps the flags and the watches, in the order of their descriptors.
func (*inotifyKind) Dump(d *Dumper, o object) error {
	ws, err := inotifyWatches(&fdState{pid: o.pid, fd: o.fd, info: o.info})
	if err != nil {
		return err
	}
	slices.SortFunc(ws, func(a, b *pb.InotifyWdEntry) int { return int(a.GetWd()) - int(b.GetWd()) })
	mounts := map[uint32]*os.File{}
	defer closeMounts(mounts)
	for _, w := range ws {
		w.Id = proto.Uint32(o.id)
		// The path too, as CRIU's dump keeps it (fh_entry.path): CRIU's
		// restore opens the file by it, having no mount images of
		// gockpt's to open the handle with.
		f, err := openWatched(mounts, w)
		if err != nil {
			return fmt.Errorf("task %d fd %d: inotify watch %d on inode %d: %w", o.pid, o.fd, w.GetWd(), w.GetIIno(), err)
		}
		path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		f.Close()
		if err != nil {
			return err
		}
		if _, deleted := trimDeleted(path); !deleted && strings.HasPrefix(path, "/") {
			w.FHandle.Path = proto.String(path)
		}
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_INOTIFY.Enum(), Id: proto.Uint32(o.id), Ify: &pb.InotifyFileEntry{
		Id: proto.Uint32(o.id), Flags: proto.Uint32(o.flags()), Fown: o.own, Wd: ws,
	}})
	return nil
}

// Open makes the instance and sets each watch with its descriptor. The
// kernel hands out descriptors in increasing order from the last one
// given: a watch whose descriptor is further on is set and removed until
// the next one is the one wanted, as CRIU does. Each removal queues an
// IN_IGNORED event, read away before the task gets the instance (dump
// refused any queued event, so the queue must be empty).
func (k *inotifyKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetIfy()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	ws := slices.Clone(e.GetWd())
	slices.SortFunc(ws, func(a, b *pb.InotifyWdEntry) int { return int(a.GetWd()) - int(b.GetWd()) })
	removed := false
	for _, w := range ws {
		r, err := addWatch(k.mounts, fd, w)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("inotify watch %d on inode %d: %w", w.GetWd(), w.GetIIno(), err)
		}
		removed = removed || r
	}
	if removed {
		if err := drainInotify(fd); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := setFlags(f, e.GetFlags()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// addWatch sets watch w on inotify fd with its own descriptor; it tells
// whether it had to remove watches on the way.
func addWatch(mounts map[uint32]*os.File, fd int, w *pb.InotifyWdEntry) (bool, error) {
	file, err := openWatched(mounts, w)
	if err != nil {
		return false, err
	}
	defer file.Close()
	path := fmt.Sprintf("/proc/self/fd/%d", file.Fd())
	removed := false
	for {
		wd, err := unix.InotifyAddWatch(fd, path, w.GetMask())
		if err != nil {
			return removed, fmt.Errorf("inotify_add_watch(mask %#x): %w", w.GetMask(), err)
		}
		switch {
		case uint32(wd) == w.GetWd():
			return removed, nil
		case uint32(wd) > w.GetWd():
			return removed, fmt.Errorf("the kernel gave descriptor %d, past the one wanted", wd)
		}
		if _, err := unix.InotifyRmWatch(fd, uint32(wd)); err != nil {
			return removed, fmt.Errorf("inotify_rm_watch(%d): %w", wd, err)
		}
		removed = true
	}
}

// drainInotify reads away the IN_IGNORED events the removals queued.
func drainInotify(fd int) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || err == nil && n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("inotify: reading the events of removed watches: %w", err)
		}
	}
}

// Close closes the mounts restore opened.
func (k *inotifyKind) Close() { closeMounts(k.mounts) }

func (*inotifyKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetIfy().GetFown(), e.GetIfy().GetFlags()
}

func (*inotifyKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("inotify, %d watches", len(e.GetIfy().GetWd()))
}
