package files

import (
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// TestKindTable: every kind has a type of its own, and a fresh set holds
// each under its type.
func TestKindTable(t *testing.T) {
	ks := newKindSet()
	if len(ks.list) != len(kindTable) || len(ks.byType) != len(kindTable) {
		t.Fatalf("%d kinds, %d types, table of %d: a type is taken twice", len(ks.list), len(ks.byType), len(kindTable))
	}
	for _, k := range ks.list {
		if ks.byType[k.Type()] != k {
			t.Errorf("%v: not found by its type", k.Type())
		}
	}
	if other := newKindSet(); other.byType[pb.FdTypes_PIPE] == ks.byType[pb.FdTypes_PIPE] {
		t.Error("two sets share a pipe kind: their state would mix")
	}
}

// TestKindMatch: each fd goes to the kind that keeps it, or to none
// (refused), as its link text, mode and flags say.
func TestKindMatch(t *testing.T) {
	st := func(mode uint32, rdev uint64) unix.Stat_t { return unix.Stat_t{Mode: mode, Rdev: rdev} }
	for _, c := range []struct {
		target string
		st     unix.Stat_t
		flags  uint32
		want   pb.FdTypes // 0: no kind
	}{
		{"/etc/passwd", st(unix.S_IFREG, 0), unix.O_RDONLY, pb.FdTypes_REG},
		{"/tmp", st(unix.S_IFDIR, 0), unix.O_RDONLY | unix.O_DIRECTORY, pb.FdTypes_REG},
		{"/dev/null", st(unix.S_IFCHR, unix.Mkdev(1, 3)), unix.O_RDWR, pb.FdTypes_REG},
		{"/dev/pts/3", st(unix.S_IFCHR, unix.Mkdev(136, 3)), unix.O_RDWR, pb.FdTypes_TTY},
		{"/dev/tty", st(unix.S_IFCHR, unix.Mkdev(5, 0)), unix.O_RDWR, pb.FdTypes_TTY},
		{"/dev/pts/3", st(unix.S_IFCHR, unix.Mkdev(136, 3)), unix.O_PATH, pb.FdTypes_REG},
		{"/run/f.fifo", st(unix.S_IFIFO, 0), unix.O_RDONLY, pb.FdTypes_FIFO},
		{"/run/f.fifo", st(unix.S_IFIFO, 0), unix.O_PATH, pb.FdTypes_REG},
		{"/run/s.sock", st(unix.S_IFSOCK, 0), unix.O_PATH, pb.FdTypes_REG},
		{"/memfd:buf (deleted)", st(unix.S_IFREG, 0), unix.O_RDWR, pb.FdTypes_MEMFD},
		{"/memfd:buf (deleted)", st(unix.S_IFREG, 0), unix.O_PATH, pb.FdTypes_MEMFD},
		{"pipe:[1234]", st(unix.S_IFIFO, 0), unix.O_RDONLY, pb.FdTypes_PIPE},
		{"anon_inode:[eventfd]", st(0, 0), unix.O_RDWR, pb.FdTypes_EVENTFD},
		{"anon_inode:[eventpoll]", st(0, 0), unix.O_RDWR, pb.FdTypes_EVENTPOLL},
		{"anon_inode:[pidfd]", st(0, 0), unix.O_RDWR, pb.FdTypes_PIDFD},
		{"pidfd:[1]", st(unix.S_IFREG, 0), unix.O_RDWR, pb.FdTypes_PIDFD},
		{"anon_inode:[timerfd]", st(0, 0), unix.O_RDWR, pb.FdTypes_TIMERFD},
		{"anon_inode:[signalfd]", st(0, 0), unix.O_RDWR, pb.FdTypes_SIGNALFD},
		{"anon_inode:[fanotify]", st(0, 0), unix.O_RDWR, pb.FdTypes_FANOTIFY},
		{"anon_inode:[userfaultfd]", st(0, 0), unix.O_RDWR, 0},
		{"socket:[99]", st(unix.S_IFSOCK, 0), unix.O_RDWR, 0}, // no such socket: no protocol name
	} {
		s := &fdState{target: c.target, st: c.st, info: &proc.Fdinfo{Flags: c.flags}}
		k := stateless.match(s)
		got := pb.FdTypes(0)
		if k != nil {
			got = k.Type()
		}
		if got != c.want {
			t.Errorf("%s (mode %#o flags %#o): kind %v, want %v", c.target, c.st.Mode, c.flags, got, c.want)
		}
	}
}

// TestKindDescribeOwner: image show's words for each kind, and the SIGIO
// owner each keeps (a FIFO's is its path entry's).
func TestKindDescribeOwner(t *testing.T) {
	own := &pb.FownEntry{Pid: proto.Uint32(42)}
	name := "/var/log/x.log"
	files := map[uint32]*pb.FileEntry{
		1: {Type: pb.FdTypes_REG.Enum(), Id: u32(1), Reg: &pb.RegFileEntry{Id: u32(1), Name: &name, Flags: u32(unix.O_WRONLY), Fown: own}},
		2: {Type: pb.FdTypes_PIPE.Enum(), Id: u32(2), Pipe: &pb.PipeEntry{Id: u32(2), PipeId: u32(77), Flags: u32(unix.O_RDONLY), Fown: own}},
		3: {Type: pb.FdTypes_FIFO.Enum(), Id: u32(3), Fifo: &pb.FifoEntry{Id: u32(3), PipeId: u32(78), RegfId: u32(1)}},
		4: {Type: pb.FdTypes_EVENTFD.Enum(), Id: u32(4), Efd: &pb.EventfdFileEntry{Id: u32(4), Counter: u64(9), Flags: u32(unix.O_RDWR), Fown: own}},
		5: {Type: pb.FdTypes_EVENTPOLL.Enum(), Id: u32(5), Epfd: &pb.EventpollFileEntry{Id: u32(5), Flags: u32(unix.O_RDWR), Fown: own,
			Tfd: []*pb.EventpollTfdEntry{{Tfd: u32(3)}, {Tfd: u32(4)}}}},
		6:  {Type: pb.FdTypes_PIDFD.Enum(), Id: u32(6), Pidfd: &pb.PidfdEntry{Id: u32(6), Nspid: proto.Int32(300), Flags: u32(0), Fown: own}},
		7:  {Type: pb.FdTypes_PIDFD.Enum(), Id: u32(7), Pidfd: &pb.PidfdEntry{Id: u32(7), Nspid: proto.Int32(-1), Flags: u32(pidfdThread), Fown: own}},
		8:  {Type: pb.FdTypes_BPFMAP.Enum(), Id: u32(8)},
		9:  {Type: pb.FdTypes_TIMERFD.Enum(), Id: u32(9), Tfd: &pb.TimerfdEntry{Id: u32(9), Clockid: u32(1), Vsec: u64(99), Vnsec: u64(5), Isec: u64(1), Ticks: u64(2), Fown: own}},
		10: {Type: pb.FdTypes_SIGNALFD.Enum(), Id: u32(10), Sgfd: &pb.SignalfdEntry{Id: u32(10), Sigmask: u64(0x200), Fown: own}},
	}
	want := map[uint32]string{
		1: "/var/log/x.log", 2: "pipe:[77]", 3: "fifo pipe:[78]", 4: "eventfd counter 9", 5: "epoll, 2 targets",
		6: "pidfd of PID 300", 7: "pidfd of a thread reaped before the dump", 8: "",
		9: "timerfd clock 1, 99.000000005 s left, every 1.000000000 s, 2 ticks", 10: "signalfd mask 0x200",
	}
	for id, w := range want {
		if got := Describe(files[id]); got != w {
			t.Errorf("file %d: Describe %q, want %q", id, got, w)
		}
		fown, _ := Owner(files[id], files)
		if id == 8 {
			if fown != nil {
				t.Errorf("bpf map: owner %v from no kind", fown)
			}
			continue
		}
		if fown.GetPid() != 42 {
			t.Errorf("file %d: owner %v, want pid 42", id, fown)
		}
	}
	if _, flags := Owner(files[3], files); flags != unix.O_WRONLY {
		t.Errorf("fifo: flags %#o, want its path entry's %#o", flags, unix.O_WRONLY)
	}
}
