package pagemap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

const fixtureDir = "/work/shared/testdata/criu-4.2/counter"

func openFixture(t *testing.T) *Reader {
	t.Helper()
	if _, err := os.Stat(fixtureDir); err != nil {
		t.Skipf("CRIU fixture not available: %v", err)
	}
	d, err := images.OpenDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(d, 12833)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func pattern(i uint64) byte { return byte(i*131 + (i >> 12)) }

// counter.c fills a 1 MiB anonymous mapping with pattern(i); find it among
// the dumped pages and check every byte through the reader.
func TestFixturePattern(t *testing.T) {
	r := openFixture(t)
	var total uint64
	for _, e := range r.Entries() {
		total += e.NrPages
	}
	if total != 286 {
		t.Errorf("fixture lists %d pages, want 286", total)
	}
	page := make([]byte, PageSize)
	var start uint64
	found := false
	for _, e := range r.Entries() {
		for a := e.Vaddr; a < e.End() && !found; a += PageSize {
			if err := r.ReadAt(page, a); err != nil {
				t.Fatal(err)
			}
			ok := true
			for i := range page {
				if page[i] != pattern(uint64(i)) {
					ok = false
					break
				}
			}
			if ok {
				start, found = a, true
			}
		}
	}
	if !found {
		t.Fatal("no page of the fixture starts the 1 MiB pattern")
	}
	mem := make([]byte, 1<<20)
	if err := r.ReadAt(mem, start); err != nil {
		t.Fatalf("reading 1 MiB at %#x: %v", start, err)
	}
	for i := range mem {
		if mem[i] != pattern(uint64(i)) {
			t.Fatalf("byte %d of the mapping at %#x is %#x, want %#x", i, start, mem[i], pattern(uint64(i)))
		}
	}
	t.Logf("1 MiB pattern at %#x", start)
}

func TestFixtureHeapCanary(t *testing.T) {
	r := openFixture(t)
	page := make([]byte, PageSize)
	for _, e := range r.Entries() {
		for a := e.Vaddr; a < e.End(); a += PageSize {
			if err := r.ReadAt(page, a); err != nil {
				t.Fatal(err)
			}
			if i := bytes.Index(page, []byte("heap-canary-12833\x00")); i >= 0 {
				t.Logf("canary at %#x", a+uint64(i))
				return
			}
		}
	}
	t.Fatal("heap-canary-12833 not found in the fixture's pages")
}

func TestFixtureNotDumped(t *testing.T) {
	r := openFixture(t)
	err := r.ReadAt(make([]byte, 8), 0x1000)
	if !errors.Is(err, ErrNotDumped) || !strings.Contains(err.Error(), "address 0x1000") {
		t.Errorf("reading an undumped address: %v", err)
	}
}

func fill(n int, seed byte) []byte {
	b := make([]byte, n*PageSize)
	for i := range b {
		b[i] = seed + byte(i/PageSize)
	}
	return b
}

// A pre-dump writes pages to a parent directory; the dump marks them
// PE_PARENT and writes only what changed. Reads must follow the link.
func TestParentChain(t *testing.T) {
	root := t.TempDir()
	prev, err := images.CreateDir(filepath.Join(root, "pre"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := Create(prev, 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.Add(Entry{Vaddr: 0x10000, NrPages: 4, Flags: FlagPresent}, fill(4, 10)))
	must(t, w.Close())

	cur, err := images.CreateDir(filepath.Join(root, "dump"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, cur.LinkParent("../pre"))
	w, err = Create(cur, 42, 1)
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.Add(Entry{Vaddr: 0x10000, NrPages: 1, Flags: FlagParent}, nil))
	must(t, w.Add(Entry{Vaddr: 0x11000, NrPages: 1, Flags: FlagPresent}, fill(1, 100)))
	// Contiguous with the same flags: merged into one entry with the next.
	must(t, w.Add(Entry{Vaddr: 0x12000, NrPages: 1, Flags: FlagParent}, nil))
	must(t, w.Add(Entry{Vaddr: 0x13000, NrPages: 1, Flags: FlagParent}, nil))
	must(t, w.Add(Entry{Vaddr: 0x20000, NrPages: 1, Flags: FlagLazy}, nil))
	must(t, w.Close())

	r, err := Open(cur, 42)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wantEntries := []Entry{
		{0x10000, 1, FlagParent}, {0x11000, 1, FlagPresent}, {0x12000, 2, FlagParent}, {0x20000, 1, FlagLazy},
	}
	if got := r.Entries(); len(got) != len(wantEntries) {
		t.Fatalf("entries %v, want %v", got, wantEntries)
	} else {
		for i := range got {
			if got[i] != wantEntries[i] {
				t.Errorf("entry %d: %v, want %v", i, got[i], wantEntries[i])
			}
		}
	}
	got := make([]byte, 4*PageSize)
	must(t, r.ReadAt(got, 0x10000))
	want := fill(4, 10)
	copy(want[PageSize:], fill(1, 100))
	if !bytes.Equal(got, want) {
		t.Error("pages read through the parent chain differ from what was written")
	}
	err = r.ReadAt(make([]byte, 1), 0x20000)
	if err == nil || !strings.Contains(err.Error(), "lazy") {
		t.Errorf("lazy page: %v", err)
	}

	// Without the link, parent pages cannot be found, and the error says so.
	os.Remove(cur.Join(images.ParentLink))
	r2, err := Open(cur, 42)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	err = r2.ReadAt(make([]byte, 1), 0x10000)
	if err == nil || !strings.Contains(err.Error(), `has no "parent" link`) {
		t.Errorf("missing parent: %v", err)
	}
}

func TestParentLoop(t *testing.T) {
	d, err := images.CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	must(t, d.LinkParent("."))
	w, _ := Create(d, 1, 1)
	must(t, w.Add(Entry{Vaddr: 0x1000, NrPages: 1, Flags: FlagParent}, nil))
	must(t, w.Close())
	r, err := Open(d, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.ReadAt(make([]byte, 1), 0x1000); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Errorf("parent loop: %v", err)
	}
}

func TestWriterRejects(t *testing.T) {
	d, _ := images.CreateDir(t.TempDir())
	w, err := Create(d, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, c := range []struct {
		e    Entry
		data []byte
		want string
	}{
		{Entry{0x1001, 1, FlagPresent}, fill(1, 0), "bad run"},
		{Entry{0x1000, 0, FlagPresent}, nil, "bad run"},
		{Entry{0x1000, 2, FlagPresent}, fill(1, 0), "comes with 4096 bytes of data, want 8192"},
		{Entry{0x1000, 1, FlagParent}, fill(1, 0), "want 0"},
	} {
		if err := w.Add(c.e, c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Add(%v): %v, want %q", c.e, err, c.want)
		}
	}
	must(t, w.Add(Entry{0x5000, 1, FlagPresent}, fill(1, 0)))
	if err := w.Add(Entry{0x4000, 1, FlagPresent}, fill(1, 0)); err == nil || !strings.Contains(err.Error(), "before the end") {
		t.Errorf("descending: %v", err)
	}
}

func pagemapImage(t testing.TB, entries ...*pb.PagemapEntry) []byte {
	var buf bytes.Buffer
	w, err := images.NewWriter(&buf, "pagemap", images.KindPagemap)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteEntry(&pb.PagemapHead{PagesId: proto.Uint32(1)})
	for _, e := range entries {
		if err := w.WriteEntry(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	return buf.Bytes()
}

func TestParseChecks(t *testing.T) {
	pe := func(vaddr uint64, nr uint64) *pb.PagemapEntry {
		return &pb.PagemapEntry{Vaddr: &vaddr, CompatNrPages: proto.Uint32(0), NrPages: &nr, Flags: proto.Uint32(FlagPresent)}
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"unaligned", pagemapImage(t, pe(0x1001, 1)), "at byte 14: entry at 0x1001 is not page-aligned"},
		{"zero pages", pagemapImage(t, pe(0x1000, 0)), "impossible page count 0"},
		{"wraps", pagemapImage(t, pe(0xfffffffffffff000, 2)), "impossible page count 2"},
		{"overlap", pagemapImage(t, pe(0x1000, 2), pe(0x2000, 1)), "overlaps or precedes"},
		{"no head", binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, images.CommonMagic), images.KindPagemap.Magic), "no pagemap head"},
	}
	for _, c := range cases {
		_, _, err := Parse(bytes.NewReader(c.data), "pagemap-1.img")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "pagemap-1.img: ") {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Old images: no flags means present, in_parent means parent, and
	// compat_nr_pages counts when nr_pages is absent.
	old := pagemapImage(t,
		&pb.PagemapEntry{Vaddr: proto.Uint64(0x1000), CompatNrPages: proto.Uint32(2)},
		&pb.PagemapEntry{Vaddr: proto.Uint64(0x3000), CompatNrPages: proto.Uint32(1), InParent: proto.Bool(true)})
	_, ents, err := Parse(bytes.NewReader(old), "old")
	if err != nil {
		t.Fatal(err)
	}
	if ents[0] != (Entry{0x1000, 2, FlagPresent}) || ents[1] != (Entry{0x3000, 1, FlagParent}) {
		t.Errorf("old entries read as %v", ents)
	}
}

func TestShortPagesFile(t *testing.T) {
	d, _ := images.CreateDir(t.TempDir())
	w, _ := Create(d, 1, 1)
	must(t, w.Add(Entry{0x1000, 2, FlagPresent}, fill(2, 0)))
	must(t, w.Close())
	must(t, os.Truncate(d.Join("pages-1.img"), PageSize))
	_, err := Open(d, 1)
	if err == nil || !strings.Contains(err.Error(), "holds 4096 bytes but") {
		t.Errorf("short pages file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(pagemapImage(f, &pb.PagemapEntry{Vaddr: proto.Uint64(0x1000), CompatNrPages: proto.Uint32(0), NrPages: proto.Uint64(3), Flags: proto.Uint32(FlagPresent | FlagLazy)}))
	if b, err := os.ReadFile(filepath.Join(fixtureDir, "pagemap-12833.img")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, ents, err := Parse(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		for i, e := range ents {
			if e.Vaddr%PageSize != 0 || e.NrPages == 0 || e.End() <= e.Vaddr {
				t.Fatalf("Parse accepted bad entry %v", e)
			}
			if i > 0 && e.Vaddr < ents[i-1].End() {
				t.Fatalf("Parse accepted overlapping entries %v %v", ents[i-1], e)
			}
			r := &Reader{entries: ents}
			if got, ok := r.Find(e.Vaddr); !ok || got != e {
				t.Fatalf("Find(%#x) = %v %v", e.Vaddr, got, ok)
			}
			if _, ok := r.Find(e.End() - 1); !ok {
				t.Fatalf("Find(end-1) of %v failed", e)
			}
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCheckParents: runs left to the parent must be held there, up the
// chain; a gap is named.
func TestCheckParents(t *testing.T) {
	root := t.TempDir()
	mk := func(name, parent string, entries ...Entry) *images.Dir {
		d, err := images.CreateDir(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if parent != "" {
			must(t, d.LinkParent(parent))
		}
		w, err := Create(d, 7, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			var data []byte
			if e.Flags&FlagPresent != 0 {
				data = fill(int(e.NrPages), 1)
			}
			must(t, w.Add(e, data))
		}
		must(t, w.Close())
		return d
	}
	mk("a", "", Entry{0x10000, 2, FlagPresent}, Entry{0x20000, 1, FlagPresent})
	mk("b", "../a", Entry{0x10000, 1, FlagParent}, Entry{0x11000, 1, FlagPresent}, Entry{0x20000, 1, FlagParent})
	c := mk("c", "../b", Entry{0x10000, 2, FlagParent}, Entry{0x20000, 1, FlagParent})
	r, err := Open(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	must(t, r.CheckParents())
	r.Close()

	d := mk("d", "../b", Entry{0x10000, 3, FlagParent})
	r, err = Open(d, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := d.Join("pagemap-7.img") + ": pages 0x10000-0x13000 are listed as in the parent images, but " + filepath.Join(root, "b", "pagemap-7.img") + " does not hold page 0x12000"
	if err := r.CheckParents(); err == nil || err.Error() != want {
		t.Errorf("gap in the parent: %v\nwant %s", err, want)
	}
}
