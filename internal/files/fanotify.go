package files

import (
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

// fanotifyKind is a fanotify group with its marks, as CRIU 4.2 keeps one:
// the group's fanotify_init flags and event flags, and each inode mark
// (kept by file handle, set again through open_by_handle_at as inotify's
// watches are) and mount mark (kept by mount ID, set again on the mount
// point of that mount in gockpt's mount namespace, the tree's), with their
// masks, ignored masks and mark flags. CRIU's image has no place for
// filesystem and mount-namespace marks: a group with one is refused, as is
// a group with events queued (nor does CRIU keep those).
type fanotifyKind struct {
	kindBase
	mounts map[uint32]*os.File // restore: a mount of each device, by kernel dev
}

func newFanotifyKind() Kind { return &fanotifyKind{mounts: map[uint32]*os.File{}} }

func (*fanotifyKind) Type() pb.FdTypes { return pb.FdTypes_FANOTIFY }

func (*fanotifyKind) Match(s *fdState) bool { return s.target == "anon_inode:[fanotify]" }

// fanotifyPermEvents are the events a listener must answer: a task that
// causes one waits until it does.
const fanotifyPermEvents = unix.FAN_OPEN_PERM | unix.FAN_ACCESS_PERM | unix.FAN_OPEN_EXEC_PERM | 0x00100000 // FAN_PRE_ACCESS, Linux 6.14

// unkeptMarkError is a mark line of a kind CRIU's image cannot hold.
type unkeptMarkError struct{ what string }

func (e *unkeptMarkError) Error() string { return e.what }

// parseFanotifyGroup reads the group line of a fanotify fdinfo, its value
// after "fanotify flags:": "2 event-flags:8000", both hex.
func parseFanotifyGroup(v string) (faflags, evflags uint32, err error) {
	fa, ev, ok := strings.Cut(v, " event-flags:")
	if !ok {
		return 0, 0, fmt.Errorf("fanotify flags %q: no event-flags", v)
	}
	a, err := strconv.ParseUint(strings.TrimSpace(fa), 16, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("fanotify flags %q: %w", fa, err)
	}
	b, err := strconv.ParseUint(strings.TrimSpace(ev), 16, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("fanotify event-flags %q: %w", ev, err)
	}
	return uint32(a), uint32(b), nil
}

// parseFanotifyMark reads one mark line of a fanotify fdinfo, all hex:
// "fanotify ino:98401d sdev:fe00000 mflags:0 mask:a ignored_mask:0
// fhandle-bytes:8 fhandle-type:1 f_handle:1d40980051887dd9" (an inode;
// no fhandle fields on a filesystem without file handles) or "fanotify
// mnt_id:1b mflags:0 mask:8 ignored_mask:0" (a mount). A filesystem mark
// ("fanotify sdev:...") or a mount-namespace one ("fanotify mnt_ns:...",
// its namespace's inode number in decimal) is an *unkeptMarkError.
func parseFanotifyMark(line string) (*pb.FanotifyMarkEntry, error) {
	rest, ok := strings.CutPrefix(line, "fanotify ")
	if !ok {
		return nil, errors.New("not a fanotify mark line")
	}
	vals, err := markFields(rest)
	if err != nil {
		return nil, err
	}
	var n [3]uint64
	for i, k := range []string{"mflags", "mask", "ignored_mask"} {
		if n[i], err = vals.hex(k, 32); err != nil {
			return nil, err
		}
	}
	m := &pb.FanotifyMarkEntry{Mflags: proto.Uint32(uint32(n[0])), Mask: proto.Uint32(uint32(n[1])), IgnoredMask: proto.Uint32(uint32(n[2]))}
	masks := fmt.Sprintf("mask %#x, ignored mask %#x", n[1], n[2])
	switch {
	case vals["ino"] != "":
		ino, err := vals.hex("ino", 64)
		if err != nil {
			return nil, err
		}
		dev, err := vals.hex("sdev", 32)
		if err != nil {
			return nil, err
		}
		fh, err := vals.fhandle()
		if err != nil {
			return nil, err
		}
		if fh == nil {
			fh = &pb.FhEntry{Bytes: proto.Uint32(0), Type: proto.Uint32(0)} // required in the image; restore refuses it
		}
		m.Type, m.SDev = pb.MarkType_INODE.Enum(), proto.Uint32(uint32(dev))
		m.Ie = &pb.FanotifyInodeMarkEntry{IIno: proto.Uint64(ino), FHandle: fh}
	case vals["mnt_id"] != "":
		id, err := vals.hex("mnt_id", 32)
		if err != nil {
			return nil, err
		}
		m.Type, m.SDev = pb.MarkType_MOUNT.Enum(), proto.Uint32(0)
		m.Me = &pb.FanotifyMountMarkEntry{MntId: proto.Uint32(uint32(id))}
	case vals["mnt_ns"] != "":
		return nil, &unkeptMarkError{fmt.Sprintf("a mount-namespace mark (mnt:[%s]; %s)", vals["mnt_ns"], masks)}
	case vals["sdev"] != "":
		dev, err := vals.hex("sdev", 32)
		if err != nil {
			return nil, err
		}
		return nil, &unkeptMarkError{fmt.Sprintf("a filesystem mark (device %d:%d; %s)", dev>>20, dev&0xfffff, masks)}
	default:
		return nil, errors.New("a mark of no known kind")
	}
	return m, nil
}

// fanotifyGroup reads a fanotify fd's fdinfo: the group's flags and its
// marks, in the order fdinfo lists them (the newest first).
func fanotifyGroup(s *fdState) (faflags, evflags uint32, marks []*pb.FanotifyMarkEntry, err error) {
	v, ok := s.info.Fields["fanotify flags"]
	if !ok {
		return 0, 0, nil, fmt.Errorf("task %d fd %d: fdinfo has no fanotify flags line", s.pid, s.fd)
	}
	if faflags, evflags, err = parseFanotifyGroup(v); err != nil {
		return 0, 0, nil, fmt.Errorf("task %d fd %d: %w", s.pid, s.fd, err)
	}
	for _, line := range s.info.Entries {
		if !strings.HasPrefix(line, "fanotify ") {
			continue
		}
		m, err := parseFanotifyMark(line)
		var unkept *unkeptMarkError
		if err != nil && !errors.As(err, &unkept) {
			return 0, 0, nil, fmt.Errorf("task %d fd %d: fdinfo line %q: %w", s.pid, s.fd, line, err)
		}
		if err != nil {
			return 0, 0, nil, err
		}
		marks = append(marks, m)
	}
	return faflags, evflags, marks, nil
}

// describeMark names a mark in a refusal.
func describeMark(m *pb.FanotifyMarkEntry) string {
	if m.GetType() == pb.MarkType_MOUNT {
		return fmt.Sprintf("a mount mark on mount %d (mask %#x, ignored mask %#x)", m.GetMe().GetMntId(), m.GetMask(), m.GetIgnoredMask())
	}
	return fmt.Sprintf("an inode mark on inode %d of device %d:%d (mask %#x, ignored mask %#x)",
		m.GetIe().GetIIno(), m.GetSDev()>>20, m.GetSDev()&0xfffff, m.GetMask(), m.GetIgnoredMask())
}

// Check refuses queued events (restore could not queue them again; a
// permission event read and not answered yet is not seen), marks CRIU's
// image cannot hold, and marks restore could not set again: an inode its
// file handle no longer opens, a mount not in gockpt's mount namespace.
func (*fanotifyKind) Check(c *Checker, s *fdState) error {
	_, _, marks, err := fanotifyGroup(s)
	var unkept *unkeptMarkError
	if errors.As(err, &unkept) {
		r := c.refuse(s, support.FanotifyUnkeptMarks, s.target)
		r.Detail = unkept.what
		return r
	}
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
		r := c.refuse(s, support.FanotifyQueued, s.target)
		r.Detail = fmt.Sprintf("%d bytes of events not read", queued)
		var perm uint32
		for _, m := range marks {
			perm |= m.GetMask() & fanotifyPermEvents
		}
		if perm != 0 {
			r.Detail += fmt.Sprintf(", its marks ask for permission events (%#x) a task may be waiting to have answered", perm)
		}
		return r
	}
	mounts := map[uint32]*os.File{}
	defer closeMounts(mounts)
	for _, m := range marks {
		f, err := openMarked(mounts, m)
		if err != nil {
			r := c.refuse(s, support.FanotifyUnkeptMarks, s.target)
			r.Detail = fmt.Sprintf("%s: %v", describeMark(m), err)
			return r
		}
		f.Close()
	}
	return nil
}

// openMarked opens (O_PATH) what mark m is on: the inode by its file
// handle, or the mount point of the mount by its ID.
func openMarked(mounts map[uint32]*os.File, m *pb.FanotifyMarkEntry) (*os.File, error) {
	switch m.GetType() {
	case pb.MarkType_INODE:
		return openInode(mounts, m.GetSDev(), m.GetIe().GetIIno(), m.GetIe().GetFHandle())
	case pb.MarkType_MOUNT:
		mnt, err := mountByID(int(m.GetMe().GetMntId()))
		if err != nil {
			return nil, err
		}
		return openMountRoot(mnt)
	}
	return nil, fmt.Errorf("mark of type %v", m.GetType())
}

// mountByID finds mount id in gockpt's mount namespace (dump refuses a
// tree in another, so the tree's mount IDs are the same).
func mountByID(id int) (*proc.Mount, error) {
	ms, err := proc.ReadMountinfo(os.Getpid())
	if err != nil {
		return nil, err
	}
	for i := range ms {
		if ms[i].ID == id {
			return &ms[i], nil
		}
	}
	return nil, fmt.Errorf("no mount %d in gockpt's mount namespace", id)
}

// openMountRoot opens the mount point of mnt, making sure it is that
// mount's root and not a mount stacked over it.
func openMountRoot(mnt *proc.Mount) (*os.File, error) {
	fd, err := unix.Open(mnt.MountPoint, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mount %d: %w", mnt.ID, err)
	}
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, &stx); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mount %d: statx %s: %w", mnt.ID, mnt.MountPoint, err)
	}
	if stx.Mnt_id != uint64(mnt.ID) {
		unix.Close(fd)
		return nil, fmt.Errorf("mount %d: %s opens mount %d, mounted over it", mnt.ID, mnt.MountPoint, stx.Mnt_id)
	}
	return os.NewFile(uintptr(fd), "marked"), nil
}

// Dump keeps the group's flags and its marks in fdinfo's order. An inode
// mark keeps the file's path too and a mount mark its mount point and
// device, as CRIU's dump does: CRIU's restore opens them by these.
func (*fanotifyKind) Dump(d *Dumper, o object) error {
	faflags, evflags, marks, err := fanotifyGroup(&fdState{pid: o.pid, fd: o.fd, info: o.info})
	if err != nil {
		return err
	}
	mounts := map[uint32]*os.File{}
	defer closeMounts(mounts)
	for _, m := range marks {
		m.Id = proto.Uint32(o.id)
		if m.GetType() == pb.MarkType_MOUNT {
			mnt, err := mountByID(int(m.GetMe().GetMntId()))
			if err != nil {
				return fmt.Errorf("task %d fd %d: fanotify %s: %w", o.pid, o.fd, describeMark(m), err)
			}
			m.SDev = proto.Uint32(mnt.Major<<20 | mnt.Minor)
			m.Me.Path = proto.String(mnt.MountPoint)
			continue
		}
		f, err := openMarked(mounts, m)
		if err != nil {
			return fmt.Errorf("task %d fd %d: fanotify %s: %w", o.pid, o.fd, describeMark(m), err)
		}
		path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
		f.Close()
		if err != nil {
			return err
		}
		if _, deleted := trimDeleted(path); !deleted && strings.HasPrefix(path, "/") {
			m.Ie.FHandle.Path = proto.String(path)
		}
	}
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_FANOTIFY.Enum(), Id: proto.Uint32(o.id), Ffy: &pb.FanotifyFileEntry{
		Id: proto.Uint32(o.id), Flags: proto.Uint32(o.flags()), Fown: o.own, Faflags: proto.Uint32(faflags), Evflags: proto.Uint32(evflags), Mark: marks,
	}})
	return nil
}

// Open makes the group with its own flags (so that fdinfo shows them the
// same) and sets its marks oldest first, so that fdinfo lists them in the
// same order.
func (k *fanotifyKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetFfy()
	fd, err := unix.FanotifyInit(uint(e.GetFaflags()), uint(e.GetEvflags()))
	if err != nil {
		return nil, fmt.Errorf("fanotify_init(%#x, %#x): %w", e.GetFaflags(), e.GetEvflags(), err)
	}
	f := os.NewFile(uintptr(fd), "fanotify")
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		f.Close()
		return nil, err
	}
	for _, m := range slices.Backward(e.GetMark()) {
		if err := k.addMark(fd, m); err != nil {
			f.Close()
			return nil, fmt.Errorf("fanotify %s: %w", describeMark(m), err)
		}
	}
	if err := setFlags(f, e.GetFlags()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// addMark sets mark m on group fd: its mask, then its ignored mask with
// the flags that go with it (FAN_MARK_IGNORE, the newer kind whose mask
// may hold FAN_ONDIR and FAN_EVENT_ON_CHILD, or FAN_MARK_IGNORED_MASK;
// FAN_MARK_IGNORED_SURV_MODIFY). FAN_MARK_EVICTABLE must come with the
// call that makes the mark.
func (k *fanotifyKind) addMark(fd int, m *pb.FanotifyMarkEntry) error {
	target, err := openMarked(k.mounts, m)
	if err != nil {
		return err
	}
	defer target.Close()
	path := fmt.Sprintf("/proc/self/fd/%d", target.Fd())
	flags := uint(unix.FAN_MARK_ADD) | uint(m.GetMflags()&unix.FAN_MARK_EVICTABLE)
	if m.GetType() == pb.MarkType_MOUNT {
		flags |= unix.FAN_MARK_MOUNT
	}
	if m.GetMask() != 0 {
		if err := unix.FanotifyMark(fd, flags, uint64(m.GetMask()), unix.AT_FDCWD, path); err != nil {
			return fmt.Errorf("fanotify_mark(%#x, mask %#x): %w", flags, m.GetMask(), err)
		}
	}
	ignore := uint(m.GetMflags() & (unix.FAN_MARK_IGNORE | unix.FAN_MARK_IGNORED_SURV_MODIFY))
	if m.GetIgnoredMask() == 0 && ignore == 0 {
		return nil
	}
	if ignore&unix.FAN_MARK_IGNORE == 0 {
		ignore |= unix.FAN_MARK_IGNORED_MASK
	}
	if err := unix.FanotifyMark(fd, flags|ignore, uint64(m.GetIgnoredMask()), unix.AT_FDCWD, path); err != nil {
		return fmt.Errorf("fanotify_mark(%#x, ignored mask %#x): %w", flags|ignore, m.GetIgnoredMask(), err)
	}
	return nil
}

// Close closes the mounts restore opened.
func (k *fanotifyKind) Close() { closeMounts(k.mounts) }

func (*fanotifyKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetFfy().GetFown(), e.GetFfy().GetFlags()
}

func (*fanotifyKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("fanotify, %d marks", len(e.GetFfy().GetMark()))
}
