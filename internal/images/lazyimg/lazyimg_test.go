package lazyimg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	pb "github.com/gockpt/gockpt/proto"
)

const (
	present = pagemap.FlagPresent
	lazy    = pagemap.FlagPresent | pagemap.FlagLazy
	parent  = pagemap.FlagParent
)

// page returns the page at addr as the synthetic dumps hold it: every
// byte says which page it is (and which directory: 0 for the dump, 1 for
// its parent).
func page(addr uint64, gen byte) []byte {
	return bytes.Repeat([]byte{byte(addr/pagemap.PageSize) + gen*100}, pagemap.PageSize)
}

func runData(e pagemap.Entry, gen byte) []byte {
	var b []byte
	for a := e.Vaddr; a < e.End(); a += pagemap.PageSize {
		b = append(b, page(a, gen)...)
	}
	return b
}

// taskRuns is the pagemap of task 100 in the synthetic dump: lazy
// anonymous memory around a thread's stack page, runs left in the parent,
// file-backed pages.
var taskRuns = []pagemap.Entry{
	{Vaddr: 0x10000, NrPages: 4, Flags: lazy},
	{Vaddr: 0x14000, NrPages: 1, Flags: present}, // the stack pointer's page
	{Vaddr: 0x15000, NrPages: 3, Flags: lazy},
	{Vaddr: 0x20000, NrPages: 2, Flags: parent},
	{Vaddr: 0x30000, NrPages: 2, Flags: present}, // a file's private pages
}

func writeInventory(t *testing.T, d *images.Dir, preDump uint32) {
	t.Helper()
	inv := &pb.InventoryEntry{ImgVersion: proto.Uint32(2)}
	if preDump != 0 {
		inv.PreDumpMode = proto.Uint32(preDump)
	}
	if err := d.WriteOne(images.InventoryFile, images.KindInventory, inv); err != nil {
		t.Fatal(err)
	}
}

// writeTask writes pagemap-PID.img and pages-ID.img with the data of the
// present runs.
func writeTask(t *testing.T, d *images.Dir, pid int, id uint32, runs []pagemap.Entry, gen byte) {
	t.Helper()
	w, err := pagemap.Create(d, pid, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range runs {
		var data []byte
		if e.Flags&pagemap.FlagPresent != 0 {
			data = runData(e, gen)
		}
		if err := w.Add(e, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// makeDump makes ROOT/pre (a pre-dump holding 0x20000-0x22000) and
// ROOT/final, a dump whose parent is ../pre: task 100 (taskRuns, pages-1),
// shared memory 7 (pages-2), an orphan pages-9.img and a few other files.
func makeDump(t *testing.T) (root, src string) {
	t.Helper()
	root = t.TempDir()
	pre, err := images.CreateDir(filepath.Join(root, "pre"))
	if err != nil {
		t.Fatal(err)
	}
	writeInventory(t, pre, 1)
	writeTask(t, pre, 100, 1, []pagemap.Entry{{Vaddr: 0x20000, NrPages: 2, Flags: present}}, 1)

	d, err := images.CreateDir(filepath.Join(root, "final"))
	if err != nil {
		t.Fatal(err)
	}
	writeInventory(t, d, 0)
	pid := uint32(100)
	if err := d.WriteOne(images.PstreeFile, images.KindPstree, &pb.PstreeEntry{Pid: &pid, Ppid: proto.Uint32(0), Pgid: &pid, Sid: &pid, Threads: []uint32{pid}}); err != nil {
		t.Fatal(err)
	}
	writeTask(t, d, 100, 1, taskRuns, 0)
	sw, err := pagemap.CreateShmem(d, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	shm := pagemap.Entry{Vaddr: 0, NrPages: 2, Flags: present}
	if err := sw.Add(shm, runData(shm, 2)); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"pages-9.img":  strings.Repeat("x", 3*pagemap.PageSize),
		"core-100.img": "core", "mm-100.img": "mm", "dump.log": "log\n",
	} {
		if err := os.WriteFile(d.Join(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.LinkParent("../pre"); err != nil {
		t.Fatal(err)
	}
	return root, d.Path()
}

func readEntries(t *testing.T, path string) (uint32, []pagemap.Entry) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, entries, err := pagemap.Parse(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return id, entries
}

func TestMakeLazy(t *testing.T) {
	root, src := makeDump(t)
	dst := filepath.Join(root, "lazy")
	s, err := Make(src, dst)
	if err != nil {
		t.Fatal(err)
	}

	// The task's pagemap: lazy runs lose PE_PRESENT, the rest is as it was.
	id, got := readEntries(t, filepath.Join(dst, "pagemap-100.img"))
	want := []pagemap.Entry{
		{Vaddr: 0x10000, NrPages: 4, Flags: pagemap.FlagLazy},
		{Vaddr: 0x14000, NrPages: 1, Flags: present},
		{Vaddr: 0x15000, NrPages: 3, Flags: pagemap.FlagLazy},
		{Vaddr: 0x20000, NrPages: 2, Flags: parent},
		{Vaddr: 0x30000, NrPages: 2, Flags: present},
	}
	if id != 1 || !reflect.DeepEqual(got, want) {
		t.Errorf("DST pagemap-100.img: pages %d, %v\nwant pages 1, %v", id, got, want)
	}
	// Its pages: the stack page, then the file's.
	wantPages := append(page(0x14000, 0), runData(taskRuns[4], 0)...)
	if b, err := os.ReadFile(filepath.Join(dst, "pages-1.img")); err != nil || !bytes.Equal(b, wantPages) {
		t.Errorf("DST pages-1.img: %d bytes (%v), want the 3 pages of the eager runs", len(b), err)
	}
	// Through a reader: eager pages from DST, parent runs through the
	// link, lazy ones refused.
	d, err := images.OpenDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pagemap.Open(d, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.CheckParents(); err != nil {
		t.Errorf("DST's parent chain: %v", err)
	}
	buf := make([]byte, pagemap.PageSize)
	for addr, gen := range map[uint64]byte{0x14000: 0, 0x31000: 0, 0x21000: 1} {
		if err := r.ReadAt(buf, addr); err != nil || !bytes.Equal(buf, page(addr, gen)) {
			t.Errorf("DST page %#x: %v, or wrong data", addr, err)
		}
	}
	if err := r.ReadAt(buf, 0x11000); err == nil || !strings.Contains(err.Error(), "is lazy") {
		t.Errorf("DST lazy page 0x11000: %v, want it refused as lazy", err)
	}

	// Shared memory and the other files: as they were. The orphan pages
	// file is not copied.
	for _, name := range []string{"pagemap-shmem-7.img", "pages-2.img", "inventory.img", "pstree.img", "core-100.img", "mm-100.img", "dump.log"} {
		a, _ := os.ReadFile(filepath.Join(src, name))
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("DST %s: %v, or differs from SRC's", name, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dst, "pages-9.img")); err == nil {
		t.Error("DST holds pages-9.img, which no pagemap names")
	}

	// The parent link leads to SRC's parent, relative as CRIU makes it.
	if l, err := os.Readlink(filepath.Join(dst, "parent")); err != nil || l != "../pre" {
		t.Errorf("DST parent link: %q, %v; want ../pre", l, err)
	}

	// Modes, and nothing left beside DST.
	if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("DST mode: %v %v", st.Mode(), err)
	}
	ents, _ := os.ReadDir(dst)
	var names []string
	var dstBytes int64
	for _, e := range ents {
		names = append(names, e.Name())
		if e.Type().IsRegular() {
			fi, _ := e.Info()
			dstBytes += fi.Size()
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("DST %s: mode %v, want 0600", e.Name(), fi.Mode())
			}
		}
	}
	wantNames := []string{"core-100.img", "dump.log", "inventory.img", "mm-100.img", "pagemap-100.img", "pagemap-shmem-7.img", "pages-1.img", "pages-2.img", "parent", "pstree.img"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("DST holds %v\nwant %v", names, wantNames)
	}
	assertOnly(t, root, "final", "lazy", "pre")

	// The summary.
	var srcBytes int64
	srcEnts, _ := os.ReadDir(src)
	for _, e := range srcEnts {
		if e.Type().IsRegular() {
			fi, _ := e.Info()
			srcBytes += fi.Size()
		}
	}
	if s.SrcBytes != srcBytes || s.DstBytes != dstBytes || s.SrcFiles != 10 || s.DstFiles != 9 {
		t.Errorf("summary: SRC %d bytes in %d files, DST %d in %d; want %d in 10, %d in 9", s.SrcBytes, s.SrcFiles, s.DstBytes, s.DstFiles, srcBytes, dstBytes)
	}
	if s.LazyPages != 7 || s.EagerPages != 3 || s.ParentPages != 2 || s.Tasks != 1 || s.AlreadyLazy != 0 {
		t.Errorf("summary: %+v", s)
	}
	var out bytes.Buffer
	if err := s.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	wantText := "SRC " + src + ": " + exactSize(srcBytes) + " in 10 files\n" +
		"DST " + dst + ": " + exactSize(dstBytes) + " in 9 files, parent -> ../pre\n" +
		"7 pages (28.0 KiB) of 1 task left to be served lazily; 3 pages restored from DST, 2 from the parent images\n" +
		"not copied: pages-9.img (no pagemap names it)\n"
	if out.String() != wantText {
		t.Errorf("summary text:\n%s\nwant\n%s", out.String(), wantText)
	}

	// make-lazy of DST: nothing more to leave out; the lazy runs stay
	// lazy, counted as already without data.
	s2, err := Make(dst, filepath.Join(root, "again"))
	if err != nil {
		t.Fatal(err)
	}
	if _, got2 := readEntries(t, filepath.Join(root, "again", "pagemap-100.img")); !reflect.DeepEqual(got2, want) || s2.AlreadyLazy != 7 || s2.LazyPages != 7 {
		t.Errorf("make-lazy of DST: %v, summary %+v", got2, s2)
	}
}

// assertOnly checks that dir holds exactly names: no temporary directory
// is left.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

// TestMakeLazyParentLink: DST elsewhere gets a link, relative to it, that
// leads to SRC's parent; an absolute link stays absolute.
func TestMakeLazyParentLink(t *testing.T) {
	root, src := makeDump(t)
	dst := filepath.Join(root, "a", "b", "lazy")
	if _, err := Make(src, dst); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(dst, "parent")); l != "../../../pre" {
		t.Errorf("DST parent link: %q, want ../../../pre", l)
	}
	if st, err := os.Stat(filepath.Join(root, "a")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("DST's parent directory made with %v (%v), want 0700", st.Mode(), err)
	}

	// Absolute in SRC, absolute in DST; DST an empty directory already.
	if err := os.Remove(filepath.Join(src, "parent")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "pre"), filepath.Join(src, "parent")); err != nil {
		t.Fatal(err)
	}
	dst2 := filepath.Join(root, "empty")
	if err := os.Mkdir(dst2, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Make(src, dst2); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(dst2, "parent")); l != filepath.Join(root, "pre") {
		t.Errorf("DST parent link: %q, want %s", l, filepath.Join(root, "pre"))
	}
	if st, _ := os.Stat(dst2); st.Mode().Perm() != 0o700 {
		t.Errorf("DST (empty before) mode %v, want 0700", st.Mode())
	}

	// DST inside SRC: DST is no part of what is copied.
	in := filepath.Join(src, "lazy")
	if _, err := Make(src, in); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(in, "parent")); l != filepath.Join(root, "pre") {
		t.Errorf("DST in SRC: parent link %q", l)
	}
	if ents, _ := os.ReadDir(in); len(ents) != 10 {
		t.Errorf("DST in SRC holds %d entries, want 10", len(ents))
	}
}

// TestMakeLazyCRIUFixture: CRIU marks lazy pages too (PE_LAZY|PE_PRESENT);
// DST of its dump has the same runs, the lazy ones without their data, the
// others with theirs.
func TestMakeLazyCRIUFixture(t *testing.T) {
	const fixture = "/work/shared/testdata/criu-4.2/counter"
	if _, err := os.Stat(fixture); err != nil {
		t.Skipf("CRIU fixture not available: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "lazy")
	s, err := Make(fixture, dst)
	if err != nil {
		t.Fatal(err)
	}
	_, a := readEntries(t, filepath.Join(fixture, "pagemap-12833.img"))
	_, b := readEntries(t, filepath.Join(dst, "pagemap-12833.img"))
	if len(a) != len(b) {
		t.Fatalf("%d runs in SRC, %d in DST", len(a), len(b))
	}
	var lazyPages, eager uint64
	for i := range a {
		want := a[i]
		if want.Flags == lazy {
			want.Flags = pagemap.FlagLazy
			lazyPages += want.NrPages
		} else {
			eager += want.NrPages
		}
		if b[i] != want {
			t.Errorf("run %d: %v in DST, want %v", i, b[i], want)
		}
	}
	if s.LazyPages != lazyPages || s.EagerPages != eager || lazyPages == 0 || s.DstBytes != s.SrcBytes-int64(lazyPages)*pagemap.PageSize {
		t.Errorf("summary %+v; %d lazy pages, %d eager", s, lazyPages, eager)
	}
	sd, _ := images.OpenDir(fixture)
	dd, _ := images.OpenDir(dst)
	sr, err := pagemap.Open(sd, 12833)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	dr, err := pagemap.Open(dd, 12833)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	p, q := make([]byte, pagemap.PageSize), make([]byte, pagemap.PageSize)
	for _, e := range b {
		if e.Flags != pagemap.FlagPresent {
			continue
		}
		for addr := e.Vaddr; addr < e.End(); addr += pagemap.PageSize {
			if err := sr.ReadAt(p, addr); err != nil {
				t.Fatal(err)
			}
			if err := dr.ReadAt(q, addr); err != nil || !bytes.Equal(p, q) {
				t.Fatalf("page %#x differs in DST (%v)", addr, err)
			}
		}
	}
}

func TestMakeLazyRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		// spoil breaks the dump in root/final; dst is made lazy from it.
		spoil func(t *testing.T, root, src string) (dst string)
		want  string // with ROOT for the root directory
	}{
		{"no SRC", func(t *testing.T, root, src string) string {
			os.RemoveAll(src)
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final does not exist: give the images directory of a dump"},
		{"SRC a file", func(t *testing.T, root, src string) string {
			os.RemoveAll(src)
			os.WriteFile(src, nil, 0o600)
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final is not a directory: give the images directory of a dump"},
		{"no inventory", func(t *testing.T, root, src string) string {
			os.Remove(filepath.Join(src, "inventory.img"))
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final holds no inventory.img: it is not an images directory, or its dump did not finish; give the directory of a complete dump"},
		{"pre-dump", func(t *testing.T, root, src string) string {
			d, _ := images.OpenDir(src)
			writeInventory(t, d, 1)
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final holds a pre-dump (memory only), which cannot be restored: give the final dump's directory"},
		{"no pstree", func(t *testing.T, root, src string) string {
			os.Remove(filepath.Join(src, "pstree.img"))
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final has inventory.img but no pstree.img: the dump is incomplete"},
		{"DST is SRC", func(t *testing.T, root, src string) string {
			return root + "/pre/../final"
		}, "DST ROOT/pre/../final is SRC itself: give a new directory for the lazy images"},
		{"DST not empty", func(t *testing.T, root, src string) string {
			return filepath.Join(root, "pre")
		}, "DST ROOT/pre exists and is not empty (holds inventory.img, pagemap-100.img, pages-1.img): give a new or empty directory for the lazy images"},
		{"DST a file", func(t *testing.T, root, src string) string {
			os.WriteFile(filepath.Join(root, "file"), nil, 0o600)
			return filepath.Join(root, "file")
		}, "DST ROOT/file exists and is not a directory: give a new directory for the lazy images"},
		{"unaligned run", func(t *testing.T, root, src string) string {
			d, _ := images.OpenDir(src)
			if err := pagemap.WriteEntries(d, 100, 1, []pagemap.Entry{{Vaddr: 0x10010, NrPages: 1, Flags: lazy}}); err != nil {
				t.Fatal(err)
			}
			// The directories made for DST go too.
			return filepath.Join(root, "new", "dirs", "lazy")
		}, "damaged pagemap: ROOT/final/pagemap-100.img: at byte 14: entry at 0x10010 is not page-aligned: SRC cannot be restored, nor made lazy; dump again"},
		{"overlapping runs", func(t *testing.T, root, src string) string {
			d, _ := images.OpenDir(src)
			if err := pagemap.WriteEntries(d, 100, 1, []pagemap.Entry{{Vaddr: 0x10000, NrPages: 2, Flags: lazy}, {Vaddr: 0x11000, NrPages: 1, Flags: present}}); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, "lazy")
		}, "damaged pagemap: ROOT/final/pagemap-100.img: at byte 28: entry 0x11000-0x12000 (1 pages, PE_PRESENT) overlaps or precedes 0x10000-0x12000 (2 pages, PE_LAZY | PE_PRESENT): SRC cannot be restored, nor made lazy; dump again"},
		{"not a pagemap", func(t *testing.T, root, src string) string {
			os.Rename(filepath.Join(src, "inventory.img"), filepath.Join(src, "pagemap-100.img"))
			d, _ := images.OpenDir(src)
			writeInventory(t, d, 0)
			return filepath.Join(root, "lazy")
		}, "damaged pagemap: ROOT/final/pagemap-100.img: a INVENTORY image, not a pagemap: SRC cannot be restored, nor made lazy; dump again"},
		{"short pages", func(t *testing.T, root, src string) string {
			os.Truncate(filepath.Join(src, "pages-1.img"), 2*pagemap.PageSize)
			return filepath.Join(root, "lazy")
		}, "SRC: pages-1.img holds 8192 bytes but pagemap-100.img lists 40960 bytes of present pages: the dump is incomplete"},
		{"no pages", func(t *testing.T, root, src string) string {
			os.Remove(filepath.Join(src, "pages-1.img"))
			return filepath.Join(root, "lazy")
		}, "SRC: pagemap-100.img lists 40960 bytes of pages in pages-1.img: opening image: open ROOT/final/pages-1.img: no such file or directory"},
		{"no shmem pages", func(t *testing.T, root, src string) string {
			os.Remove(filepath.Join(src, "pages-2.img"))
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final: pagemap-shmem-7.img names pages-2.img, which is not there: the dump is incomplete"},
		{"no task pagemap", func(t *testing.T, root, src string) string {
			os.Remove(filepath.Join(src, "pagemap-100.img"))
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final holds no task pagemap (pagemap-PID.img): the dump is incomplete"},
		{"pages on a page server", func(t *testing.T, root, src string) string {
			os.Rename(filepath.Join(src, "pagemap-100.img"), filepath.Join(src, "gockpt-sent-pagemap-100.img"))
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final holds no task pagemap: its pages went to a page server; make-lazy the page server's directory, with the other images of this dump copied beside the pagemaps"},
		{"broken parent link", func(t *testing.T, root, src string) string {
			os.Rename(filepath.Join(root, "pre"), filepath.Join(root, "moved"))
			return filepath.Join(root, "lazy")
		}, "SRC ROOT/final: the parent link (-> ../pre) is broken: no such file or directory: the pages SRC leaves in the parent images would be lost; fix the link"},
		{"parent without the pages", func(t *testing.T, root, src string) string {
			d, _ := images.OpenDir(filepath.Join(root, "pre"))
			writeTask(t, d, 100, 1, []pagemap.Entry{{Vaddr: 0x20000, NrPages: 1, Flags: present}}, 1)
			return filepath.Join(root, "lazy")
		}, "ROOT/final/pagemap-100.img: pages 0x20000-0x22000 are listed as in the parent images, but ROOT/pre/pagemap-100.img does not hold page 0x21000: SRC cannot be restored, nor made lazy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, src := makeDump(t)
			dst := c.spoil(t, root, src)
			before := listing(t, root)
			_, err := Make(src, dst)
			if err == nil {
				t.Fatal("made lazy")
			}
			if want := strings.ReplaceAll(c.want, "ROOT", root); err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			if after := listing(t, root); !reflect.DeepEqual(before, after) {
				t.Errorf("a failed make-lazy changed %s:\n%v\nnow\n%v", root, before, after)
			}
		})
	}
}

// listing names every file under dir.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 bytes", 1023: "1023 bytes", 1024: "1.0 KiB (1024 bytes)", 118784: "116.0 KiB (118784 bytes)",
		74245171: "70.8 MiB (74245171 bytes)", 5 << 30: "5.0 GiB (5368709120 bytes)",
	} {
		if got := exactSize(n); got != want {
			t.Errorf("exactSize(%d) = %q, want %q", n, got, want)
		}
	}
}
