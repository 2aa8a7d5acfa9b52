package files

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// File locks (--file-locks) are kept in filelocks.img as CRIU keeps them:
// one FileLockEntry per lock, naming the task and fd that take it again at
// restore. This file is the one place that knows that format.
//
// Dump reads the locks from each fd's fdinfo: the kernel lists there the
// flock and OFD locks of the fd's open file description, and the POSIX
// locks its task's fd table took through it. Blocked requests are not
// listed (and a task frozen by ptrace waits for nothing: its F_SETLKW or
// flock returns -ERESTARTSYS and is made again after restore).

// CRIU's fl_kind flags (criu/include/file-lock.h).
const (
	flPosix = 1
	flFlock = 2
	flOFD   = 4
	flLease = 8
)

// CRIU's lock types: F_RDLCK and F_WRLCK, for flock locks too (a shared
// flock lock is F_RDLCK, an exclusive one F_WRLCK).
const (
	lockRead  = unix.F_RDLCK
	lockWrite = unix.F_WRLCK
)

// LockEntry is CRIU's entry for lock l, to be taken again by task pid
// through its fd.
func LockEntry(l proc.Lock, pid, fd int) (*pb.FileLockEntry, error) {
	var flag uint32
	switch l.Class {
	case "POSIX":
		flag = flPosix
	case "FLOCK":
		flag = flFlock
	case "OFDLCK":
		flag = flOFD
	default:
		return nil, fmt.Errorf("%s: gockpt keeps flock, POSIX and OFD locks only", l.Describe())
	}
	var typ uint32
	switch l.Type {
	case "READ":
		typ = lockRead
	case "WRITE":
		typ = lockWrite
	default:
		return nil, fmt.Errorf("lock of type %s: gockpt keeps read and write locks only", l.Type)
	}
	length := int64(0) // to the end of the file
	if l.End >= 0 {
		length = l.End - l.Start + 1
	}
	if l.Class == "FLOCK" {
		l.Start, length = 0, 0
	}
	return &pb.FileLockEntry{Flag: proto.Uint32(flag), Type: proto.Uint32(typ), Pid: proto.Int32(int32(pid)), Fd: proto.Int32(int32(fd)),
		Start: proto.Int64(l.Start), Len: proto.Int64(length)}, nil
}

// LockOf reads entry e back as the lock it describes (Pid the task that
// takes it); an entry gockpt cannot take again is an error saying why.
func LockOf(e *pb.FileLockEntry) (proc.Lock, error) {
	l := proc.Lock{Mode: "ADVISORY", Pid: int(e.GetPid()), Start: e.GetStart(), End: -1}
	switch e.GetFlag() {
	case flPosix:
		l.Class = "POSIX"
	case flFlock:
		l.Class = "FLOCK"
	case flOFD:
		l.Class = "OFDLCK"
	case flLease:
		return l, errors.New("a lease: gockpt does not restore file leases")
	default:
		return l, fmt.Errorf("a lock of unknown kind %#x", e.GetFlag())
	}
	switch e.GetType() {
	case lockRead:
		l.Type = "READ"
	case lockWrite:
		l.Type = "WRITE"
	default:
		// LOCK_MAND (Samba's, gone since Linux 5.15) and anything else.
		return l, fmt.Errorf("a %s lock of type %#x, neither read nor write", l.Class, e.GetType())
	}
	if e.GetStart() < 0 || e.GetLen() < 0 {
		return l, fmt.Errorf("a %s lock on %d bytes from %d", l.Class, e.GetLen(), e.GetStart())
	}
	if e.GetLen() > 0 {
		l.End = e.GetStart() + e.GetLen() - 1
	}
	return l, nil
}

// lockKey tells one lock from another among those fdinfo shows: the
// same lock appears on every fd of the open file description (flock,
// OFD: owner is the file's object id) or of the fd table that took it
// through that description (POSIX: owner is the task whose table it is).
type lockKey struct {
	class, typ string
	owner      uint64
	dev        string
	ino        uint64
	start, end int64
}

// lockSet collects the tree's locks as the fds are dumped.
type lockSet struct {
	entries []*pb.FileLockEntry
	byKey   map[lockKey]int
	// lines are the lock lines seen in fdinfo, as /proc/locks shows them.
	lines map[proc.Lock]bool
}

// note records the locks fd of task pid shows; id is its open file
// description's object id.
func (ls *lockSet) note(s *fdState, id uint32) error {
	for _, l := range s.info.FdLocks() {
		if l.Waiter || l.IsLease() {
			continue // the checker refused leases already
		}
		if ls.byKey == nil {
			ls.byKey, ls.lines = map[lockKey]int{}, map[proc.Lock]bool{}
		}
		ls.lines[l] = true
		k := lockKey{class: l.Class, typ: l.Type, owner: uint64(id), dev: l.Dev, ino: l.Ino, start: l.Start, end: l.End}
		if l.Class == "POSIX" {
			k.owner = uint64(s.pid)
		}
		if i, ok := ls.byKey[k]; ok {
			// A flock lock goes back to the task that took it, when it
			// holds the file too (fdinfo and /proc/locks show its PID).
			if e := ls.entries[i]; l.Class == "FLOCK" && int(e.GetPid()) != l.Pid && s.pid == l.Pid {
				e.Pid, e.Fd = proto.Int32(int32(s.pid)), proto.Int32(int32(s.fd))
			}
			continue
		}
		e, err := LockEntry(l, s.pid, s.fd)
		if err != nil {
			return fmt.Errorf("task %d fd %d: %s: %w", s.pid, s.fd, s.target, err)
		}
		ls.byKey[k] = len(ls.entries)
		ls.entries = append(ls.entries, e)
	}
	return nil
}

// Locks returns the locks collected so far, in the order taken at restore.
func (d *Dumper) Locks() []*pb.FileLockEntry { return d.locks.entries }

// SeenLock tells whether some fd of the tree showed lock l (as /proc/locks
// lists it).
func (d *Dumper) SeenLock(l proc.Lock) bool {
	l.Waiter = false
	return d.locks.lines[l]
}

// writeLocks writes filelocks.img, when asked to keep locks.
func (d *Dumper) writeLocks(dir *images.Dir) error {
	if !d.Checker.FileLocks {
		return nil
	}
	return writeEntries(dir, images.FileLocksFile, images.KindFileLocks, d.locks.entries)
}

// TakeLock takes lock e again, from inside task t (its Pid) through e's
// fd: POSIX locks belong to the task's fd table and only it can take them;
// flock and OFD locks are the open file description's, and taken there
// the lock records the task's PID as the dumped one did. It never waits:
// a conflicting lock of a process outside the tree is an error (-EAGAIN
// for fcntl, -EWOULDBLOCK for flock).
func TakeLock(t Task, e *pb.FileLockEntry) error {
	l, err := LockOf(e)
	if err != nil {
		return err
	}
	fd := uint64(e.GetFd())
	if l.Class == "FLOCK" {
		op := uint64(unix.LOCK_SH)
		if l.Type == "WRITE" {
			op = unix.LOCK_EX
		}
		_, err := t.Call(fmt.Sprintf("flock(%d, %s|LOCK_NB)", fd, map[bool]string{true: "LOCK_EX", false: "LOCK_SH"}[op == unix.LOCK_EX]), unix.SYS_FLOCK, fd, op|unix.LOCK_NB)
		return err
	}
	cmd, name := uint64(unix.F_SETLK), "F_SETLK"
	if l.Class == "OFDLCK" {
		cmd, name = unix.F_OFD_SETLK, "F_OFD_SETLK"
	}
	a, err := t.Put(flockBytes(uint16(e.GetType()), e.GetStart(), e.GetLen()))
	if err != nil {
		return err
	}
	_, err = t.Call(fmt.Sprintf("fcntl(%d, %s)", fd, name), unix.SYS_FCNTL, fd, cmd, a)
	return err
}

// flockBytes is a struct flock as 64-bit Linux lays it out (l_type and
// l_whence shorts, padding, l_start and l_len, l_pid, padding): the same
// on x86-64 and arm64.
func flockBytes(typ uint16, start, length int64) []byte {
	b := make([]byte, 32)
	binary.NativeEndian.PutUint16(b[0:], typ)
	binary.NativeEndian.PutUint16(b[2:], 0) // SEEK_SET
	binary.NativeEndian.PutUint64(b[8:], uint64(start))
	binary.NativeEndian.PutUint64(b[16:], uint64(length))
	return b
}
