package files

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
)

// sparseDeleted makes a deleted 1 GiB file holding data at each offset of
// exts (len bytes of byte i+1 each) and returns it open.
func sparseDeleted(t *testing.T, name string, exts []int64, n int) *os.File {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	for i, off := range exts {
		if _, err := f.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, n), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
	return f
}

// A deleted sparse file is saved as CRIU's ghost chunks, its data alone,
// and recreated with the same data and holes.
func TestGhostSparseRoundTrip(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "sparse")
	exts := []int64{0, 1 << 29, 1<<30 - 8192}
	f := sparseDeleted(t, name, exts, 8192)
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	d := NewDumper(NewChecker(0, nil))
	link := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if err := d.remap("test fd", link, name, 1, &st); err != nil {
		t.Fatal(err)
	}
	if len(d.Ghosts) != 1 || len(d.Ghosts[0].Chunks) != 3 || !d.Ghosts[0].Entry.GetChunks() {
		t.Fatalf("ghosts %d, chunks %d: want one ghost of 3 chunks", len(d.Ghosts), len(d.Ghosts[0].Chunks))
	}
	img, err := images.CreateDir(filepath.Join(dir, "img"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.writeGhosts(img); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(img.Join(images.GhostFile(d.Ghosts[0].ID)))
	if fi.Size() > 64<<10 {
		t.Errorf("ghost image is %d bytes for 24 KiB of data", fi.Size())
	}
	o := testOpener(t, img, nil, nil)
	h, err := o.ghostHolder(d.Ghosts[0].ID, filepath.Join(dir, "again", "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	var got unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &got); err != nil {
		t.Fatal(err)
	}
	if got.Size != 1<<30 || got.Nlink != 0 || got.Mode != st.Mode || got.Blocks*512 > 256<<10 {
		t.Errorf("recreated: size %d nlink %d mode %#o allocated %d", got.Size, got.Nlink, got.Mode, got.Blocks*512)
	}
	if _, err := os.Stat(filepath.Join(dir, "again")); err == nil {
		t.Errorf("the directory made for the ghost was left behind")
	}
	pos := int64(0)
	for i, off := range exts {
		data, _ := unix.Seek(int(h.Fd()), pos, unix.SEEK_DATA)
		hole, _ := unix.Seek(int(h.Fd()), data, unix.SEEK_HOLE)
		if data != off || hole != off+8192 {
			t.Errorf("extent %d at %d-%d, want %d-%d", i, data, hole, off, off+8192)
		}
		b := make([]byte, 8192)
		if _, err := h.ReadAt(b, off); err != nil || !bytes.Equal(b, bytes.Repeat([]byte{byte(i + 1)}, 8192)) {
			t.Errorf("extent %d content differs (%v)", i, err)
		}
		pos = hole
	}
}

// The ghost limit counts data, not holes: a 1 GiB file holding 2 MiB is
// refused under the default 1 MiB limit, by the 2 MiB it holds.
func TestGhostSparseLimit(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "big")
	f := sparseDeleted(t, name, []int64{0, 1 << 29}, 1<<20)
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	c := NewChecker(0, nil)
	want := fmt.Sprintf("task 1 (x) fd 3: deleted file %s is 2097152 bytes, over the ghost limit of 1048576 bytes: raise it with --ghost-limit 2097152 or close the file before dumping", name)
	if GhostBytes(&st) != 2<<20 {
		t.Errorf("GhostBytes %d, want the 2 MiB of data", GhostBytes(&st))
	}
	d := NewDumper(c)
	err := d.remap("task 1 (x) fd 3", fmt.Sprintf("/proc/self/fd/%d", f.Fd()), name, 1, &st)
	if err == nil || !IsRefusal(err) || err.Error() != want {
		t.Fatalf("dump of a 2 MiB sparse ghost:\n %v\nwant\n %s", err, want)
	}
	if len(d.Ghosts) != 0 {
		t.Errorf("a refused ghost was kept")
	}
}
