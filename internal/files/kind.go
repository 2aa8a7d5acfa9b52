package files

import (
	"os"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// Kind is one kind of open file gockpt keeps (CRIU's fdtype ops): how dump
// recognises, checks and describes it, which images it owns, how restore
// makes it and what the task does with it once all its fds exist, and how
// image show lists it. A kind is one file of this package and one entry of
// kindTable.
//
// Dump reads every kind from outside the task: /proc/PID/fd and fdinfo,
// and a copy of the fd taken with pidfd_getfd (Checker.dup) for what only
// the file itself tells. None of the kinds so far needs the parasite.
//
// A Kind value holds the state of one dump or of one restore (the pipes
// seen, the pipes made): NewDumper and NewOpener each make their own. Match,
// Check and Describe look only at their arguments.
type Kind interface {
	// Type is the type of its entries in files.img.
	Type() pb.FdTypes
	// Match tells an fd of this kind from what /proc says of it.
	Match(s *fdState) bool
	// Check refuses what dump could not keep exactly; dump asks before the
	// tree is touched, and again of the frozen tree.
	Check(c *Checker, s *fdState) error
	// Dump describes o, a new open file description, in d.Files, and keeps
	// what the kind's own images hold.
	Dump(d *Dumper, o object) error
	// WriteImages writes the kind's own images once every task is dumped.
	WriteImages(dir *images.Dir) error
	// LoadImages reads them back before restore makes any task.
	LoadImages(dir *images.Dir) error
	// Open makes gockpt's copy of file entry e; the task takes its own with
	// pidfd_getfd.
	Open(o *Opener, e *pb.FileEntry) (*os.File, error)
	// Late tells a file that can only be opened once every task and thread
	// of the tree exists.
	Late(o *Opener, e *pb.FileEntry) bool
	// AfterFds runs in task t once every fd of t is in place, for the
	// first task that holds the file (as fd).
	AfterFds(t Task, fd uint32, e *pb.FileEntry) error
	// Reopen runs in every task that holds the file (as fd), once every
	// fd of the task is in place.
	Reopen(t Task, fd uint32, e *pb.FileEntry) error
	// Owner is who gets SIGIO for the file, and its status flags; nil for
	// a file that has none.
	Owner(e *pb.FileEntry, files map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32)
	// Describe is how image show lists the file.
	Describe(e *pb.FileEntry) string
	// External is the name --inherit-fd gives the file (CRIU's key:
	// pipe:[ID], socket:[INO], a path without its leading slash,
	// tty[RDEV:DEV]), "" for a kind that has none.
	External(e *pb.FileEntry) string
	// Close releases what the kind made at restore and keeps itself
	// (pipes, FIFO holders); Opener closes what Open returned.
	Close()
}

// kindTable lists the kinds gockpt keeps, in the order dump tries them on
// an fd; the first that matches takes it.
var kindTable = []func() Kind{
	newPidfdKind,
	newEventfdKind,
	newEpollKind,
	newSignalfdKind,
	newTimerfdKind,
	newInotifyKind,
	newFanotifyKind,
	newPipeKind,
	newMemfdKind,
	newFifoKind,
	newUnixKind,
	newNetlinkKind,
	newInetKind,
	newTTYKind,
	newRegKind, // by path: regular files, directories, devices; last
}

// Task is a task being restored, as a kind sees it.
type Task interface {
	Pid() int
	// Call runs a syscall inside the task (after any queued ones) and
	// returns its result; -errno is an error naming the call.
	Call(name string, nr uintptr, args ...uint64) (uint64, error)
	// Put copies b into the task's scratch memory, for a syscall's
	// argument, and returns its address there.
	Put(b []byte) (uint64, error)
}

// kindSet is one dump's or one restore's kinds.
type kindSet struct {
	list   []Kind
	byType map[pb.FdTypes]Kind
}

func newKindSet() *kindSet {
	ks := &kindSet{byType: map[pb.FdTypes]Kind{}}
	for _, mk := range kindTable {
		k := mk()
		ks.list = append(ks.list, k)
		ks.byType[k.Type()] = k
	}
	return ks
}

// match is the kind of the fd s describes, or nil.
func (ks *kindSet) match(s *fdState) Kind {
	for _, k := range ks.list {
		if k.Match(s) {
			return k
		}
	}
	return nil
}

// stateless holds kinds for what needs no state of a dump or a restore:
// Match, Check, Owner, Describe.
var stateless = newKindSet()

// Describe is how image show lists file entry e; "" for a kind gockpt
// does not keep (the image tool then says what the entry holds).
func Describe(e *pb.FileEntry) string {
	if k := stateless.byType[e.GetType()]; k != nil {
		return k.Describe(e)
	}
	return ""
}

// Owner returns who gets SIGIO for file entry e (F_SETOWN_EX, F_SETSIG)
// and its status flags, for the kinds that keep them; nil for others.
func Owner(e *pb.FileEntry, files map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	if k := stateless.byType[e.GetType()]; k != nil {
		return k.Owner(e, files)
	}
	return nil, 0
}

// kindBase gives a kind the methods it has nothing to do in.
type kindBase struct{}

func (kindBase) Check(*Checker, *fdState) error             { return nil }
func (kindBase) WriteImages(*images.Dir) error              { return nil }
func (kindBase) LoadImages(*images.Dir) error               { return nil }
func (kindBase) Late(*Opener, *pb.FileEntry) bool           { return false }
func (kindBase) AfterFds(Task, uint32, *pb.FileEntry) error { return nil }
func (kindBase) Reopen(Task, uint32, *pb.FileEntry) error   { return nil }
func (kindBase) Close()                                     {}
func (kindBase) External(*pb.FileEntry) string              { return "" }
