package files

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// A ghost file CRIU stored in chunks (a sparse file) comes back with its
// data where the chunks say, holes elsewhere, and its size.
func TestGhostChunks(t *testing.T) {
	d, err := images.CreateDir(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.Create("ghost-file-1.img", images.KindGhostFile)
	if err != nil {
		t.Fatal(err)
	}
	const size = 3*4096 + 10
	g := &pb.GhostFileEntry{Uid: proto.Uint32(0), Gid: proto.Uint32(0), Mode: proto.Uint32(0o100600), Chunks: proto.Bool(true), Size: proto.Uint64(size)}
	if err := w.WriteEntry(g); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off  uint64
		data string
	}{{4096, "hello"}, {8192, "abc"}} {
		if err := w.WriteEntry(&pb.GhostChunkEntry{Len: proto.Uint64(uint64(len(c.data))), Off: proto.Uint64(c.off)}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(c.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	rd, err := d.Open("ghost-file-1.img")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got pb.GhostFileEntry
	if _, err := rd.ReadEntry(&got); err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "ghost")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeGhostChunks(f, rd, got.Size); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	copy(want[4096:], "hello")
	copy(want[8192:], "abc")
	if !bytes.Equal(b, want) {
		t.Errorf("content differs: %d bytes, want %d with two chunks", len(b), len(want))
	}
}

// Only regular files not open for appending carry a size to check, as in
// CRIU's images: a directory's size follows its entries, a log grows.
func TestValidationSize(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("12345"), 0o600); err != nil {
		t.Fatal(err)
	}
	var fst, dst, nst unix.Stat_t
	if unix.Stat(file, &fst) != nil || unix.Stat(dir, &dst) != nil || unix.Stat("/dev/null", &nst) != nil {
		t.Fatal("stat")
	}
	for _, c := range []struct {
		what  string
		st    *unix.Stat_t
		flags uint32
		want  *uint64
	}{
		{"regular file read-write", &fst, unix.O_RDWR, proto.Uint64(5)},
		{"regular file read-only", &fst, unix.O_RDONLY, proto.Uint64(5)},
		{"regular file read-write appending", &fst, unix.O_RDWR | unix.O_APPEND, proto.Uint64(5)},
		{"log: write-only appending", &fst, unix.O_WRONLY | unix.O_APPEND, nil},
		{"directory", &dst, unix.O_RDONLY | unix.O_DIRECTORY, nil},
		{"character device", &nst, unix.O_RDWR, nil},
	} {
		got := validationSize(c.st, c.flags)
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("%s: size %v, want %v", c.what, got, c.want)
		}
	}
}

// Two open file descriptions of one deleted file (two file entries, one
// ghost) come back on one recreated inode: what one writes, the other
// reads; each keeps its own flags and position, and the name is gone.
func TestGhostOpenedTwice(t *testing.T) {
	d, err := images.CreateDir(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.Create("ghost-file-7.img", images.KindGhostFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteEntry(&pb.GhostFileEntry{Uid: proto.Uint32(0), Gid: proto.Uint32(0), Mode: proto.Uint32(0o100600), Size: proto.Uint64(6)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "gone")
	remap := func(id uint32) *pb.RemapFilePathEntry {
		return &pb.RemapFilePathEntry{OrigId: u32(id), RemapId: u32(7), RemapType: pb.RemapType_GHOST.Enum()}
	}
	o := testOpener(t, d, map[uint32]*pb.FileEntry{
		1: {Type: pb.FdTypes_REG.Enum(), Id: u32(1), Reg: &pb.RegFileEntry{Id: u32(1), Name: &name, Flags: u32(unix.O_WRONLY | unix.O_APPEND), Pos: u64(6)}},
		2: {Type: pb.FdTypes_REG.Enum(), Id: u32(2), Reg: &pb.RegFileEntry{Id: u32(2), Name: &name, Flags: u32(unix.O_RDONLY), Pos: u64(2)}},
	}, map[uint32]*pb.RemapFilePathEntry{1: remap(1), 2: remap(2)})
	wf, err := o.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	rf, err := o.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wf.Write([]byte(";after")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := rf.Read(b)
	if string(b[:n]) != "fore;after" {
		t.Errorf("the reader at 2 reads %q, want \"fore;after\"", b[:n])
	}
	var sw, sr unix.Stat_t
	unix.Fstat(int(wf.Fd()), &sw)
	unix.Fstat(int(rf.Fd()), &sr)
	if sw.Ino != sr.Ino || sw.Nlink != 0 {
		t.Errorf("inodes %d and %d, %d links", sw.Ino, sr.Ino, sw.Nlink)
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Errorf("%s exists after restore: %v", name, err)
	}
}
