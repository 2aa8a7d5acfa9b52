package pageserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
)

func TestIOVWire(t *testing.T) {
	v := iov{cmd: cmdAddF, flags: pagemap.FlagPresent | pagemap.FlagLazy, nrPages: 3, vaddr: 0x7f0000001000, dstID: Task(1234).dstID()}
	var b [iovSize]byte
	v.marshal(b[:])
	// struct page_server_iov of CRIU 4.2: u32 cmd, 4 bytes of padding,
	// u64 nr_pages, u64 vaddr, u64 dst_id.
	want := []byte{
		6, 0, 6, 0, 0, 0, 0, 0,
		3, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x10, 0x00, 0x00, 0x00, 0x7f, 0, 0,
		0x01, 0xd2, 0x04, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(b[:], want) {
		t.Fatalf("wire bytes\n got %x\nwant %x", b, want)
	}
	if got := parseIOV(b[:]); got != v {
		t.Fatalf("parse: %+v, want %+v", got, v)
	}
}

func TestDecodeTarget(t *testing.T) {
	for _, c := range []struct {
		dst  uint64
		want Target
		err  string
	}{
		{Task(42).dstID(), Task(42), ""},
		{Shmem(77).dstID(), Shmem(77), ""},
		{42<<8 | 11, Task(42), ""},  // CRIU 1.3-3.0
		{77<<8 | 34, Shmem(77), ""}, // CRIU 2.x-3.0
		{42<<8 | 5, Target{}, "unknown pagemap type 5 in target 0x2a05"},
		{0<<8 | 1, Target{}, "target 0x1 names id 0, outside 1-4294967295"},
		{1<<40 | 1, Target{}, "names id 4294967296"},
	} {
		got, err := decodeTarget(c.dst)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("decodeTarget(%#x): %v, want error %q", c.dst, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("decodeTarget(%#x) = %v, %v; want %v", c.dst, got, err, c.want)
		}
	}
}

// pair is a connected TCP socket pair over loopback: closing one end is
// seen by the other as on a real connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// startSession runs Receive on one end of a socket pair and returns the client
// end and the result.
func startSession(t *testing.T, dir *images.Dir) (net.Conn, chan error) {
	t.Helper()
	a, b := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := Receive(b, dir, "test peer")
		b.Close()
		done <- err
	}()
	t.Cleanup(func() { a.Close() })
	return a, done
}

func newDir(t *testing.T) *images.Dir {
	t.Helper()
	d, err := images.CreateDir(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func names(t *testing.T, d *images.Dir) []string {
	t.Helper()
	ents, err := os.ReadDir(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func page(b byte) []byte { return bytes.Repeat([]byte{b}, pagemap.PageSize) }

// TestSendReceive: what the client sends is what the pagemap and pages
// images hold, runs with the same flags merged, shared memory in its own
// pagemap.
func TestSendReceive(t *testing.T) {
	dir := newDir(t)
	conn, done := startSession(t, dir)
	c, err := newClient(conn, "test server", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, parent, err := c.Open(Task(100))
	if err != nil || parent {
		t.Fatalf("open: parent %v, %v", parent, err)
	}
	s.Add(pagemap.Entry{Vaddr: 0x1000, NrPages: 1, Flags: pagemap.FlagPresent})
	s.Add(pagemap.Entry{Vaddr: 0x2000, NrPages: 1, Flags: pagemap.FlagPresent})
	s.Add(pagemap.Entry{Vaddr: 0x5000, NrPages: 2, Flags: pagemap.FlagLazy})
	s.Add(pagemap.Entry{Vaddr: 0x8000, NrPages: 1, Flags: pagemap.FlagPresent})
	for _, b := range [][]byte{page(1), page(2)[:100], page(2)[100:], page(3)} {
		if _, err := s.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _, err = c.Open(Shmem(9))
	if err != nil {
		t.Fatal(err)
	}
	s.Add(pagemap.Entry{Vaddr: 0, NrPages: 1, Flags: pagemap.FlagPresent})
	s.Write(page(9))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"pagemap-100.img", "pagemap-shmem-9.img", "pages-65537.img", "pages-65538.img"}
	if got := names(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v", got, want)
	}
	r, err := pagemap.Open(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wantEntries := []pagemap.Entry{
		{Vaddr: 0x1000, NrPages: 2, Flags: pagemap.FlagPresent},
		{Vaddr: 0x5000, NrPages: 2, Flags: pagemap.FlagLazy},
		{Vaddr: 0x8000, NrPages: 1, Flags: pagemap.FlagPresent},
	}
	if got := r.Entries(); len(got) != len(wantEntries) || got[0] != wantEntries[0] || got[1] != wantEntries[1] || got[2] != wantEntries[2] {
		t.Fatalf("entries %v, want %v", got, wantEntries)
	}
	buf := make([]byte, pagemap.PageSize)
	for addr, b := range map[uint64]byte{0x1000: 1, 0x2000: 2, 0x8000: 3} {
		if err := r.ReadAt(buf, addr); err != nil || !bytes.Equal(buf, page(b)) {
			t.Errorf("page %#x: %v, first byte %d, want %d", addr, err, buf[0], b)
		}
	}
}

// raw sends commands and data as they are, for sessions no Client would
// make.
func raw(t *testing.T, conn net.Conn, parts ...any) {
	t.Helper()
	go func() {
		for _, p := range parts {
			var b []byte
			switch p := p.(type) {
			case iov:
				b = make([]byte, iovSize)
				p.marshal(b)
			case []byte:
				b = p
			}
			if _, err := conn.Write(b); err != nil {
				return
			}
		}
		conn.Close()
	}()
	// Drain answers so the server never blocks on them.
	go io.Copy(io.Discard, conn)
}

// TestRefused: a session that goes wrong leaves the directory as it was,
// and says what went wrong.
func TestRefused(t *testing.T) {
	open := iov{cmd: cmdOpen2, dstID: Task(7).dstID()}
	add := func(vaddr, n uint64, flags uint32) iov {
		return iov{cmd: cmdAddF, flags: flags, vaddr: vaddr, nrPages: n, dstID: Task(7).dstID()}
	}
	for _, c := range []struct {
		name  string
		parts []any
		err   string
	}{
		{"hang-up", []any{open, add(0x1000, 1, pagemap.FlagPresent), page(1)},
			"the peer hung up before it closed the session (did its dump fail?)"},
		{"short data", []any{open, add(0x1000, 2, pagemap.FlagPresent), page(1)},
			"task 7: pagemap: run 0x1000-0x3000 (2 pages, PE_PRESENT): the data ended after 4096 bytes: unexpected EOF"},
		{"unknown command", []any{open, iov{cmd: 99}},
			"unexpected command 0x63: not CRIU's page-server protocol"},
		{"get", []any{iov{cmd: cmdGet, dstID: Task(7).dstID()}},
			"unexpected command GET (7): this page server receives pages; it serves them only with --lazy-pages"},
		{"add without open", []any{add(0x1000, 1, pagemap.FlagPresent), page(1)},
			"pages of task 7 sent without opening it first"},
		{"bad flags", []any{open, add(0x1000, 1, 0x8)}, "task 7: pages 0x1000 (1 pages): unknown flags 0x8"},
		{"present and parent", []any{open, add(0x1000, 1, pagemap.FlagPresent|pagemap.FlagParent)},
			"task 7: pages 0x1000 (1 pages) are marked both present and in the parent"},
		{"unaligned", []any{open, add(0x1001, 1, pagemap.FlagPresent)}, "task 7: pages at 0x1001: address not page-aligned"},
		{"zero pages", []any{open, add(0x1000, 0, pagemap.FlagPresent)}, "task 7: pages at 0x1000: 0 pages is not a valid run"},
		{"wrap", []any{open, add(0xfffffffffffff000, 2, pagemap.FlagLazy)}, "not a valid run"},
		{"backwards", []any{open, add(0x3000, 1, pagemap.FlagPresent), page(1), add(0x1000, 1, pagemap.FlagPresent), page(2)},
			"task 7: pagemap: run 0x1000-0x2000 (1 pages, PE_PRESENT) starts before the end of the previous one (0x4000)"},
		{"no parent", []any{open, add(0x1000, 1, pagemap.FlagParent)},
			"task 7: pages 0x1000-0x2000 are sent as in the parent images, but this page server has none for it: start it with --prev-images-dir naming the previous iteration's images"},
		{"opened twice", []any{open, open}, "task 7 opened twice"},
		{"bad target", []any{iov{cmd: cmdOpen2, dstID: 7<<8 | 3}}, "command 4: unknown pagemap type 3 in target 0x703"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := newDir(t)
			a, b := pair(t)
			raw(t, a, c.parts...)
			_, err := Receive(b, dir, "test peer")
			b.Close()
			want := "page server: session with test peer: " + c.err
			if err == nil || !strings.HasPrefix(err.Error(), "page server: session with test peer: ") || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %q", err, want)
			}
			if !strings.HasSuffix(err.Error(), "; nothing from it was written to "+dir.Path()) {
				t.Fatalf("error %q does not say nothing was written", err)
			}
			if got := names(t, dir); len(got) != 0 {
				t.Fatalf("the refused session left %v", got)
			}
		})
	}
}

// TestParent: runs left to the parent are accepted only where the parent
// images hold them; HasParent and OPEN2 say whether there are any.
func TestParent(t *testing.T) {
	top := t.TempDir()
	prev, err := images.CreateDir(filepath.Join(top, "prev"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pagemap.WriteEntries(prev, 7, 1, []pagemap.Entry{{Vaddr: 0x1000, NrPages: 2, Flags: pagemap.FlagPresent}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prev.Join(images.PagesFile(1)), append(page(1), page(2)...), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, err := images.CreateDir(filepath.Join(top, "cur"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.LinkParent("../prev"); err != nil {
		t.Fatal(err)
	}

	conn, done := startSession(t, dir)
	c, _ := newClient(conn, "test server", nil)
	if has, err := c.HasParent(Task(7)); err != nil || !has {
		t.Fatalf("HasParent(task 7) = %v, %v", has, err)
	}
	if has, err := c.HasParent(Task(8)); err != nil || has {
		t.Fatalf("HasParent(task 8) = %v, %v", has, err)
	}
	s, has, err := c.Open(Task(7))
	if err != nil || !has {
		t.Fatalf("open: %v %v", has, err)
	}
	s.Add(pagemap.Entry{Vaddr: 0x1000, NrPages: 1, Flags: pagemap.FlagParent})
	s.Add(pagemap.Entry{Vaddr: 0x2000, NrPages: 1, Flags: pagemap.FlagPresent})
	s.Write(page(5))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r, err := pagemap.Open(dir, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 2*pagemap.PageSize)
	if err := r.ReadAt(buf, 0x1000); err != nil || !bytes.Equal(buf, append(page(1), page(5)...)) {
		t.Fatalf("read through the parent: %v", err)
	}

	// A run the parent does not hold is refused.
	dir2, _ := images.CreateDir(filepath.Join(top, "cur2"))
	dir2.LinkParent("../prev")
	a, b := pair(t)
	raw(t, a, iov{cmd: cmdOpen2, dstID: Task(7).dstID()}, iov{cmd: cmdAddF, flags: pagemap.FlagParent, vaddr: 0x2000, nrPages: 2, dstID: Task(7).dstID()})
	_, err = Receive(b, dir2, "test peer")
	want := "task 7: pages 0x2000-0x4000 are sent as in the parent images, but " + filepath.Join(top, "prev", "pagemap-7.img") + " does not hold page 0x3000"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	if got := names(t, dir2); len(got) != 1 || got[0] != "parent" {
		t.Fatalf("the refused session left %v", got)
	}
}

// TestClientStatus: a server failing to write says so in its status, and
// the client reports it.
func TestClientStatus(t *testing.T) {
	a, b := pair(t)
	go func() {
		var buf [iovSize]byte
		io.ReadFull(b, buf[:]) // CLOSE
		var st [4]byte
		binary.LittleEndian.PutUint32(st[:], 0xffffffff)
		b.Write(st[:])
		b.Close()
	}()
	c, _ := newClient(a, "test server", nil)
	err := c.Close()
	want := "page server test server: the server failed to write the images (status -1): see its log"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	// A server that hangs up instead of answering.
	a2, b2 := pair(t)
	go func() {
		var buf [iovSize]byte
		io.ReadFull(b2, buf[:])
		b2.Close()
	}()
	c, _ = newClient(a2, "test server", nil)
	_, _, err = c.Open(Task(1))
	want = "page server test server: closed the connection instead of answering the opening of task 1: see its log"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestStreamMisuse(t *testing.T) {
	a, b := pair(t)
	go io.Copy(io.Discard, b)
	defer b.Close()
	c, _ := newClient(a, "srv", nil)
	s := &Stream{c: c, target: Task(3)}
	c.open = s
	s.Add(pagemap.Entry{Vaddr: 0x1000, NrPages: 1, Flags: pagemap.FlagLazy})
	_, err := s.Write(page(1))
	if err == nil || !errors.Is(err, c.err) || err.Error() != "page server srv: task 3: 4096 bytes of page data beyond the runs added" {
		t.Fatalf("write past the runs: %v", err)
	}
}
