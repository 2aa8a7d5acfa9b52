package files

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// TestPeekPipeLeavesData: the bytes in a pipe are copied, not consumed.
func TestPeekPipeLeavesData(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	want := bytes.Repeat([]byte("in flight "), 1000)
	if _, err := unix.Write(p[1], want); err != nil {
		t.Fatal(err)
	}
	// peekPipe reaches the pipe through /proc, as dump does for a task's fd.
	pd, err := peekPipe(fmt.Sprintf("/proc/self/fd/%d", p[1]), 42)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pd.Data, want) || pd.Entry.GetBytes() != uint32(len(want)) || pd.Entry.GetPipeId() != 42 {
		t.Fatalf("peeked %d bytes (entry %v), want %d", len(pd.Data), pd.Entry, len(want))
	}
	got := make([]byte, len(want)+10)
	n, err := unix.Read(p[0], got)
	if err != nil || !bytes.Equal(got[:n], want) {
		t.Fatalf("after the peek the pipe holds %d bytes (%v), want the original %d", n, err, len(want))
	}
}

func TestPeekEmptyPipe(t *testing.T) {
	var p [2]int
	unix.Pipe2(p[:], unix.O_CLOEXEC)
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	pd, err := peekPipe(fmt.Sprintf("/proc/self/fd/%d", p[0]), 1)
	if err != nil || pd.Entry.GetBytes() != 0 || len(pd.Data) != 0 || pd.Entry.GetSize() == 0 {
		t.Fatalf("empty pipe: %v %v", pd.Entry, err)
	}
}

// TestOpenerPipe: both ends of one pipe come from one object, the saved
// bytes are back in it, and flags are per end.
func TestOpenerPipe(t *testing.T) {
	dir := testImages(t)
	saved := newPipeBuffers(images.PipesDataFile, images.KindPipesData)
	saved.saved = []PipeData{{Entry: &pb.PipeDataEntry{PipeId: u32(7), Bytes: u32(11), Size: u32(1 << 16)}, Data: []byte("saved bytes")}}
	if err := saved.write(dir); err != nil {
		t.Fatal(err)
	}
	o := testOpener(t, dir, map[uint32]*pb.FileEntry{
		1: {Type: pb.FdTypes_PIPE.Enum(), Id: u32(1), Pipe: &pb.PipeEntry{Id: u32(1), PipeId: u32(7), Flags: u32(unix.O_RDONLY | unix.O_NONBLOCK)}},
		2: {Type: pb.FdTypes_PIPE.Enum(), Id: u32(2), Pipe: &pb.PipeEntry{Id: u32(2), PipeId: u32(7), Flags: u32(unix.O_WRONLY)}},
	}, nil)
	r, err := o.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	w, err := o.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := o.Open(1); again != r {
		t.Fatal("the same file id opened twice")
	}
	fl, _ := unix.FcntlInt(r.Fd(), unix.F_GETFL, 0)
	if fl&unix.O_NONBLOCK == 0 {
		t.Errorf("read end flags %#o lack O_NONBLOCK", fl)
	}
	w.Write([]byte(" and more"))
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "saved bytes and more" {
		t.Fatalf("pipe holds %q", buf[:n])
	}
	if sz, _ := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0); sz != 1<<16 {
		t.Errorf("pipe size %d, want %d", sz, 1<<16)
	}
}

// testImages is an empty images directory.
func testImages(t *testing.T) *images.Dir {
	t.Helper()
	d, err := images.CreateDir(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// testOpener opens files of dir (an empty one when nil), closed at the
// end of the test.
func testOpener(t *testing.T, dir *images.Dir, files map[uint32]*pb.FileEntry, remaps map[uint32]*pb.RemapFilePathEntry) *Opener {
	t.Helper()
	if dir == nil {
		dir = testImages(t)
	}
	o, err := NewOpener(dir, files, remaps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	return o
}

// TestOpenerRegular: a regular file comes back at its position with its
// flags; a file that shrank below the position is refused.
func TestOpenerRegular(t *testing.T) {
	name := t.TempDir() + "/f"
	os.WriteFile(name, []byte("0123456789"), 0o600)
	o := testOpener(t, nil, map[uint32]*pb.FileEntry{
		1: {Type: pb.FdTypes_REG.Enum(), Id: u32(1), Reg: &pb.RegFileEntry{Id: u32(1), Name: &name, Flags: u32(unix.O_RDWR | unix.O_APPEND), Pos: u64(4), Size: u64(10)}},
		2: {Type: pb.FdTypes_REG.Enum(), Id: u32(2), Reg: &pb.RegFileEntry{Id: u32(2), Name: &name, Flags: u32(unix.O_RDONLY), Pos: u64(20), Size: u64(30), Mode: u32(unix.S_IFREG | 0o600)}},
	}, nil)
	f, err := o.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	pos, _ := unix.Seek(int(f.Fd()), 0, 1)
	fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if pos != 4 || fl&unix.O_APPEND == 0 || fl&unix.O_ACCMODE != unix.O_RDWR {
		t.Fatalf("position %d flags %#o", pos, fl)
	}
	if _, err := o.Open(2); err == nil || !bytes.Contains([]byte(err.Error()), []byte("shorter than the saved position 20")) {
		t.Fatalf("shrunk file: %v", err)
	}
}

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

func TestParseTfd(t *testing.T) {
	e, err := parseTfd("tfd:        7 events:       19 data:                7  pos:0 ino:40e sdev:10")
	if err != nil {
		t.Fatal(err)
	}
	if e.GetTfd() != 7 || e.GetEvents() != 0x19 || e.GetData() != 7 || e.GetInode() != 0x40e || e.GetDev() != 0x10 || e.GetPos() != 0 {
		t.Fatalf("parsed %v", e)
	}
	if _, err := parseTfd("tfd: x events: 1"); err == nil {
		t.Fatal("garbage tfd line accepted")
	}
}

func TestEventfdRoundTrip(t *testing.T) {
	f, err := (&eventfdKind{}).Open(nil, &pb.FileEntry{Efd: &pb.EventfdFileEntry{Counter: u64(5), Flags: u32(unix.EFD_SEMAPHORE | unix.O_NONBLOCK)}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if n, err := f.Read(b); err != nil || n != 8 || b[0] != 1 {
		t.Fatalf("semaphore eventfd read %v %v", b, err)
	}
}

// TestOpenerPseudoAndOPath: a /proc file (0 bytes by stat, read past 0)
// reopens at its position; an O_PATH fd on a FIFO reopens without
// blocking, with O_PATH, and no position.
func TestOpenerPseudoAndOPath(t *testing.T) {
	status := "/proc/self/status"
	fifo := t.TempDir() + "/fifo"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	o := testOpener(t, nil, map[uint32]*pb.FileEntry{
		1: {Type: pb.FdTypes_REG.Enum(), Id: u32(1), Reg: &pb.RegFileEntry{Id: u32(1), Name: &status, Flags: u32(unix.O_RDONLY), Pos: u64(10), Size: u64(0), Mode: u32(unix.S_IFREG | 0o444)}},
		2: {Type: pb.FdTypes_REG.Enum(), Id: u32(2), Reg: &pb.RegFileEntry{Id: u32(2), Name: &fifo, Flags: u32(unix.O_PATH), Pos: u64(0), Mode: u32(unix.S_IFIFO | 0o600)}},
	}, nil)
	f, err := o.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	if pos, _ := unix.Seek(int(f.Fd()), 0, 1); pos != 10 {
		t.Fatalf("/proc/self/status at %d, want 10", pos)
	}
	f, err = o.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	fl, _ := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	var st unix.Stat_t
	if fl&unix.O_PATH == 0 || unix.Fstat(int(f.Fd()), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Fatalf("fifo flags %#o mode %#o", fl, st.Mode)
	}
}

// TestDumpOPath: O_PATH fds on a FIFO, a device and a symlink are regular-
// file entries with O_PATH in their flags, named by path, with no SIGIO
// owner read (fcntl on an O_PATH fd fails), as CRIU writes them.
func TestDumpOPath(t *testing.T) {
	dir := t.TempDir()
	fifo, link := dir+"/fifo", dir+"/link"
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fifo", link); err != nil {
		t.Fatal(err)
	}
	d := NewDumper(NewChecker(0, []int{os.Getpid()}))
	defer d.Close()
	for _, c := range []struct {
		path  string
		flags int
		mode  uint32
	}{
		{fifo, unix.O_PATH, unix.S_IFIFO},
		{"/dev/null", unix.O_PATH, unix.S_IFCHR},
		{link, unix.O_PATH | unix.O_NOFOLLOW, unix.S_IFLNK},
	} {
		fd, err := unix.Open(c.path, c.flags|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		fe, err := d.Fd(os.Getpid(), fd)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		e := d.Files[len(d.Files)-1]
		if fe.GetType() != pb.FdTypes_REG || e.GetId() != fe.GetId() || e.GetReg().GetName() != c.path ||
			e.GetReg().GetFlags() != uint32(c.flags) || e.GetReg().GetMode()&unix.S_IFMT != c.mode || e.GetReg().GetFown().GetPid() != 0 {
			t.Errorf("%s: fd %v entry %v", c.path, fe, e)
		}
	}
}

// TestDeadPidfds: one stand-in per reaped process (pidfs inode), one per
// entry that has no inode, none for pidfds of live processes.
func TestDeadPidfds(t *testing.T) {
	pidfd := func(id, ino uint32, nspid int32) *pb.FileEntry {
		return &pb.FileEntry{Type: pb.FdTypes_PIDFD.Enum(), Id: u32(id), Pidfd: &pb.PidfdEntry{Id: u32(id), Ino: u32(ino), Nspid: proto.Int32(nspid)}}
	}
	files := map[uint32]*pb.FileEntry{
		1: pidfd(1, 500, -1),
		2: pidfd(2, 501, 1234),
		3: pidfd(3, 500, -1),
		4: pidfd(4, 0, -1),
		5: pidfd(5, 0, -1),
		6: pidfd(6, 502, -1),
		7: {Type: pb.FdTypes_REG.Enum(), Id: u32(7)},
	}
	got := fmt.Sprint(DeadPidfds(files))
	if want := "[[1 3] [4] [5] [6]]"; got != want {
		t.Fatalf("DeadPidfds = %s, want %s", got, want)
	}
}

// TestReserveFdsKeepsFds: growing the table never touches an fd in use,
// not even the one n numbers above the lowest free.
func TestReserveFdsKeepsFds(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "keep")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	low, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(low)
	held, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, low+5)
	if err != nil || held != low+5 {
		t.Skipf("fd %d not free for the test (%d, %v)", low+5, held, err)
	}
	defer unix.Close(held)
	ReserveFds(5)
	var a, b unix.Stat_t
	if err := unix.Fstat(held, &a); err != nil {
		t.Fatalf("fd %d closed by ReserveFds: %v", held, err)
	}
	unix.Fstat(int(f.Fd()), &b)
	if a.Ino != b.Ino {
		t.Errorf("fd %d is another file after ReserveFds", held)
	}
}
