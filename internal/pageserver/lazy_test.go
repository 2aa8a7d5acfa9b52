package pageserver

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/testpki"
)

// lazyImages writes the pagemap of task 100: 0x1000-0x4000 lazy (in two
// entries, pages 1, 2, 3), 0x4000 present but not lazy (4), 0x8000-0xa000
// lazy without data (a dump with --lazy-pages), 0xa000 lazy (5).
func lazyImages(t testing.TB) *images.Dir {
	t.Helper()
	dir, err := images.CreateDir(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	pl := pagemap.FlagPresent | pagemap.FlagLazy
	entries := []pagemap.Entry{
		{Vaddr: 0x1000, NrPages: 2, Flags: pl},
		{Vaddr: 0x3000, NrPages: 1, Flags: pl}, // CRIU splits runs at VMAs
		{Vaddr: 0x4000, NrPages: 1, Flags: pagemap.FlagPresent},
		{Vaddr: 0x8000, NrPages: 2, Flags: pagemap.FlagLazy},
		{Vaddr: 0xa000, NrPages: 1, Flags: pl},
	}
	if err := pagemap.WriteEntries(dir, 100, 1, entries); err != nil {
		t.Fatal(err)
	}
	w, err := dir.Create(images.PagesFile(1), images.KindPages)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []byte{1, 2, 3, 4, 5} {
		if _, err := w.Write(page(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openSource(t testing.TB, dir *images.Dir) *ImagesSource {
	t.Helper()
	src, err := OpenImagesSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

type lazyResult struct {
	got Served
	err error
}

// startLazy runs ServeLazy on one end of a socket pair and returns a
// client on the other.
func startLazy(t *testing.T, src PageSource) (*Client, chan lazyResult) {
	t.Helper()
	a, b := pair(t)
	done := make(chan lazyResult, 1)
	go func() {
		got, err := ServeLazy(b, src, "test peer")
		b.Close()
		done <- lazyResult{got, err}
	}()
	c, err := newClient(a, "test server", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, done
}

func TestLazyGet(t *testing.T) {
	src := openSource(t, lazyImages(t))
	if got := src.LazyPages(); got != 4 {
		t.Fatalf("LazyPages() = %d, want 4", got)
	}
	if got := src.Pids(); len(got) != 1 || got[0] != 100 {
		t.Fatalf("Pids() = %v", got)
	}
	c, done := startLazy(t, src)
	buf := make([]byte, 8*pagemap.PageSize)
	get := func(pid int, vaddr, nr uint64, want ...byte) {
		t.Helper()
		n, err := c.Get(pid, vaddr, nr, buf)
		if err != nil || n != uint64(len(want)) {
			t.Fatalf("Get(%d, %#x, %d) = %d, %v; want %d pages", pid, vaddr, nr, n, err, len(want))
		}
		for i, b := range want {
			if !bytes.Equal(buf[i*pagemap.PageSize:(i+1)*pagemap.PageSize], page(b)) {
				t.Fatalf("Get(%d, %#x, %d): page %d is not %d", pid, vaddr, nr, i, b)
			}
		}
	}
	get(100, 0x1000, 8, 1, 2, 3) // one run through two entries
	get(100, 0x2000, 1, 2)       // fewer than the run
	get(100, 0x1000, 2, 1, 2)
	get(100, 0xa000, 3, 5)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.got.Took = 0
	// The wire: 4 answers' headers, their pages, CLOSE's status.
	if want := (Served{Requests: 4, Pages: 7, Bytes: 7 * pagemap.PageSize, Wire: 4*iovSize + 7*pagemap.PageSize + 4}); r.got != want {
		t.Fatalf("served %+v\nwant   %+v", r.got, want)
	}
	if c.Fetched != 7*pagemap.PageSize {
		t.Fatalf("Fetched = %d", c.Fetched)
	}

	// Pages the server has no lazy data for: 0 pages, and the session
	// ends on both sides.
	for _, c := range []struct {
		pid   int
		vaddr uint64
		why   string
	}{
		{100, 0x4000, "task 100: page 0x4000 of run 0x4000-0x5000 (1 pages, PE_PRESENT) is not lazy: restore puts it in place itself"},
		{100, 0x8000, "task 100: page 0x8000 of run 0x8000-0xa000 (2 pages, PE_LAZY) has its data outside the images (a dump with --lazy-pages leaves it in the dumped process)"},
		{101, 0x1000, "holds no pagemap image of task 101"},
	} {
		cl, done := startLazy(t, src)
		if n, err := cl.Get(100, 0x1000, 1, buf); err != nil || n != 1 {
			t.Fatalf("Get: %d, %v", n, err)
		}
		_, err := cl.Get(c.pid, c.vaddr, 1, buf)
		want := fmt.Sprintf("page server test server: task %d: no lazy pages at %#x: the server ended the session: see its log", c.pid, c.vaddr)
		if err == nil || err.Error() != want || !errors.Is(err, ErrNoLazyPages) {
			t.Fatalf("Get(%d, %#x): %v\nwant %q", c.pid, c.vaddr, err, want)
		}
		if _, err2 := cl.Get(100, 0x1000, 1, buf); err2 == nil || err2.Error() != want {
			t.Fatalf("Get after the end of the session: %v", err2)
		}
		if err2 := cl.Close(); err2 == nil || err2.Error() != want {
			t.Fatalf("Close after the end of the session: %v", err2)
		}
		r := <-done
		if r.err == nil || !strings.HasPrefix(r.err.Error(), fmt.Sprintf("page server: lazy session with test peer: asked for 1 pages at %#x: ", c.vaddr)) ||
			!strings.HasSuffix(r.err.Error(), c.why+": answered 0 pages and ended the session") {
			t.Fatalf("server: %v", r.err)
		}
		if r.got.Requests != 2 || r.got.Pages != 1 {
			t.Fatalf("served %+v", r.got)
		}
	}
}

// TestLazySourceReasons: why the images source has nothing to serve.
func TestLazySourceReasons(t *testing.T) {
	dir := lazyImages(t)
	src := openSource(t, dir)
	for _, c := range []struct {
		pid   int
		vaddr uint64
		want  string
	}{
		{100, 0x4000, "task 100: page 0x4000 of run 0x4000-0x5000 (1 pages, PE_PRESENT) is not lazy: restore puts it in place itself"},
		{100, 0x9000, "task 100: page 0x9000 of run 0x8000-0xa000 (2 pages, PE_LAZY) has its data outside the images (a dump with --lazy-pages leaves it in the dumped process)"},
		{100, 0x5000, "no pagemap entry of task 100 holds 0x5000"},
		{100, 0xb000, "no pagemap entry of task 100 holds 0xb000"},
		{7, 0x1000, "holds no pagemap image of task 7"},
		{100<<8 | 1, 0x1000, "holds no pagemap image of task 25601 (25601 is how OPEN names task 100: GET takes the PID as it is)"},
	} {
		n, err := src.LazyRun(c.pid, c.vaddr, 10)
		if n != 0 || err == nil || !strings.HasSuffix(err.Error(), c.want) {
			t.Errorf("LazyRun(%d, %#x) = %d, %v; want %q", c.pid, c.vaddr, n, err, c.want)
		}
	}
	for _, c := range []struct{ vaddr, max, want uint64 }{
		{0x1000, 10, 3}, {0x1000, 2, 2}, {0x3000, 10, 1}, {0xa000, 1 << 40, 1},
	} {
		if n, err := src.LazyRun(100, c.vaddr, c.max); n != c.want || err != nil {
			t.Errorf("LazyRun(100, %#x, %d) = %d, %v; want %d", c.vaddr, c.max, n, err, c.want)
		}
	}
	_, err := OpenImagesSource(newDir(t))
	if err == nil || !strings.HasSuffix(err.Error(), "holds no pagemap image: nothing to serve (-D names the images of a dump)") {
		t.Fatalf("empty directory: %v", err)
	}
}

// rawLazy runs ServeLazy on a fixed input and returns what it wrote.
func rawLazy(t *testing.T, src PageSource, in []byte) ([]byte, Served, error) {
	t.Helper()
	var out bytes.Buffer
	got, err := ServeLazy(rw{bytes.NewReader(in), &out}, src, "test peer")
	return out.Bytes(), got, err
}

func TestLazyServerErrors(t *testing.T) {
	src := openSource(t, lazyImages(t))
	get := iov{cmd: cmdGet, nrPages: 1, vaddr: 0x1000, dstID: 100}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"OPEN2", wire(iov{cmd: cmdOpen2, dstID: Task(100).dstID()}),
			"page server: lazy session with test peer: unexpected command OPEN2 (4) in a lazy page server session: it only serves pages (GET) and receives none"},
		{"ADD_F", wire(get, iov{cmd: cmdAddF, flags: pagemap.FlagPresent, nrPages: 1, vaddr: 0x1000, dstID: Task(100).dstID()}),
			"page server: lazy session with test peer: unexpected command ADD_F (6) in a lazy page server session: it only serves pages (GET) and receives none"},
		{"unknown", wire(iov{cmd: 0x99, flags: 3}),
			"page server: lazy session with test peer: unexpected command 0x30099 in a lazy page server session: it only serves pages (GET) and receives none"},
		{"EOF", wire(get),
			"page server: lazy session with test peer: the peer hung up without closing the session, after 1 requests (1 pages): did the lazy-pages daemon die?"},
		{"half a command", wire(get)[:20],
			"page server: lazy session with test peer: the peer hung up in the middle of a command"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := rawLazy(t, src, c.in)
			if err == nil || err.Error() != c.want {
				t.Fatalf("%v\nwant %q", err, c.want)
			}
		})
	}

	// Requests that cannot be served are answered with 0 pages, and the
	// session ends.
	for _, c := range []struct {
		v    iov
		want string
	}{
		{iov{cmd: cmdGet, nrPages: 1, vaddr: 0x1001, dstID: 100}, "asked for 1 pages at 0x1001: task 100: the address is not page-aligned"},
		{iov{cmd: cmdGet, nrPages: 0, vaddr: 0x1000, dstID: 100}, "asked for 0 pages at 0x1000: task 100: 0 pages asked for"},
		{iov{cmd: cmdGet, nrPages: 1, vaddr: 0x1000, dstID: 0}, "asked for 1 pages at 0x1000: 0 is not a PID"},
		{iov{cmd: cmdGet, nrPages: 1, vaddr: 0x1000, dstID: 1 << 33}, "asked for 1 pages at 0x1000: 8589934592 is not a PID"},
	} {
		out, got, err := rawLazy(t, src, wire(c.v, iov{cmd: cmdClose}))
		want := "page server: lazy session with test peer: " + c.want + ": answered 0 pages and ended the session"
		if err == nil || err.Error() != want {
			t.Fatalf("%+v: %v\nwant %q", c.v, err, want)
		}
		if w := wire(iov{cmd: cmdAddF, vaddr: c.v.vaddr, dstID: c.v.dstID}); !bytes.Equal(out, w) {
			t.Fatalf("%+v: answered\n%x\nwant\n%x", c.v, out, w)
		}
		if got.Requests != 1 || got.Pages != 0 {
			t.Fatalf("served %+v", got)
		}
	}
}

// endless has every page of every task lazy; it checks the buffers the
// server reads into.
type endless struct {
	mu     sync.Mutex
	maxLen int
	maxRun uint64
}

func (e *endless) LazyRun(pid int, vaddr, most uint64) (uint64, error) {
	e.mu.Lock()
	e.maxRun = max(e.maxRun, most)
	e.mu.Unlock()
	return most, nil
}

func (e *endless) ReadLazy(pid int, vaddr uint64, p []byte) error {
	e.mu.Lock()
	e.maxLen = max(e.maxLen, len(p))
	e.mu.Unlock()
	return nil
}

type counter struct{ n uint64 }

func (c *counter) Write(p []byte) (int, error) {
	c.n += uint64(len(p))
	return len(p), nil
}

// TestLazyBounded: a request for 2^62 pages is answered with 1 GiB, read
// through a buffer of lazyBufSize: nothing is allocated by nr_pages.
func TestLazyBounded(t *testing.T) {
	src := &endless{}
	in := wire(iov{cmd: cmdGet, nrPages: 1 << 62, vaddr: 0x1000, dstID: 1}, iov{cmd: cmdClose})
	var head bytes.Buffer
	cnt := &counter{}
	out := io.MultiWriter(cnt, &limited{w: &head, n: iovSize})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := ServeLazy(rw{bytes.NewReader(in), out}, src, "test peer")
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if a := parseIOV(head.Bytes()); a.nrPages != maxGetPages || a.cmd != cmdAddF || a.flags != pagemap.FlagPresent {
		t.Fatalf("answer %+v, want %d pages", a, maxGetPages)
	}
	if want := uint64(iovSize + 1<<30 + 4); cnt.n != want {
		t.Fatalf("wrote %d bytes, want %d", cnt.n, want)
	}
	if src.maxRun != maxGetPages || src.maxLen > lazyBufSize {
		t.Fatalf("asked the source for runs of %d pages, reads of %d bytes", src.maxRun, src.maxLen)
	}
	if got.Pages != maxGetPages {
		t.Fatalf("served %+v", got)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("serving 1 GiB allocated %d bytes", alloc)
	}
}

// limited keeps the first n bytes written.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(l.n, len(p))
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// fakeServer answers the first command with answer, then hangs up.
func fakeServer(t *testing.T, answer []byte) *Client {
	t.Helper()
	a, b := pair(t)
	go func() {
		var cmd [iovSize]byte
		io.ReadFull(b, cmd[:])
		b.Write(answer)
		b.Close()
	}()
	c, err := newClient(a, "test server", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLazyClientErrors: what Get says of a server that does not answer as
// it should (CRIU's server hangs up when it has no lazy page there).
func TestLazyClientErrors(t *testing.T) {
	buf := make([]byte, 4*pagemap.PageSize)
	ans := func(v iov, data ...byte) []byte { return wire(v, data) }
	for _, c := range []struct {
		name   string
		answer []byte
		want   string
	}{
		{"hang up", nil,
			"page server test server: closed the connection instead of answering the request for task 100's pages at 0x1000: see its log"},
		{"other address", ans(iov{cmd: cmdAddF, flags: pagemap.FlagPresent, nrPages: 1, vaddr: 0x2000, dstID: 100}),
			"page server test server: task 100's pages at 0x1000: answered with ADD_F (6) of 1 pages at 0x2000 for target 100, not ADD_F for them: not CRIU's page-server protocol"},
		{"encoded target", ans(iov{cmd: cmdAddF, flags: pagemap.FlagPresent, nrPages: 1, vaddr: 0x1000, dstID: Task(100).dstID()}),
			"page server test server: task 100's pages at 0x1000: answered with ADD_F (6) of 1 pages at 0x1000 for target 25601, not ADD_F for them: not CRIU's page-server protocol"},
		{"status", []byte{0, 0, 0, 0},
			"page server test server: closed the connection instead of answering the request for task 100's pages at 0x1000: see its log"},
		{"too many", ans(iov{cmd: cmdAddF, flags: pagemap.FlagPresent, nrPages: 3, vaddr: 0x1000, dstID: 100}),
			"page server test server: task 100's pages at 0x1000: answered 3 pages where 2 were asked for"},
		{"not present", ans(iov{cmd: cmdAddF, flags: pagemap.FlagLazy, nrPages: 1, vaddr: 0x1000, dstID: 100}),
			"page server test server: task 100's pages at 0x1000: answered with flags 0x2, not PE_PRESENT: not CRIU's page-server protocol"},
		{"data cut", append(ans(iov{cmd: cmdAddF, flags: pagemap.FlagPresent, nrPages: 2, vaddr: 0x1000, dstID: 100}), page(1)...),
			"page server test server: task 100's pages at 0x1000: closed the connection in the middle of their data: see its log"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := fakeServer(t, c.answer)
			_, err := cl.Get(100, 0x1000, 2, buf)
			if err == nil || err.Error() != c.want {
				t.Fatalf("%v\nwant %q", err, c.want)
			}
			// The session is over.
			if _, err2 := cl.Get(100, 0x1000, 1, buf); err2 == nil || err2.Error() != c.want {
				t.Fatalf("second Get: %v", err2)
			}
		})
	}

	// Requests refused before anything is sent.
	cl := fakeServer(t, nil)
	for _, c := range []struct {
		pid   int
		vaddr uint64
		nr    uint64
		want  string
	}{
		{0, 0x1000, 1, "page server test server: 0 is not a PID"},
		{100, 0x1001, 1, "page server test server: task 100's pages at 0x1001: the address is not page-aligned"},
		{100, 0x1000, 0, "page server test server: task 100's pages at 0x1000: 0 pages asked for, with room for 4"},
		{100, 0x1000, 5, "page server test server: task 100's pages at 0x1000: 5 pages asked for, with room for 4"},
	} {
		if _, err := cl.Get(c.pid, c.vaddr, c.nr, buf); err == nil || err.Error() != c.want {
			t.Errorf("Get(%d, %#x, %d): %v\nwant %q", c.pid, c.vaddr, c.nr, err, c.want)
		}
	}
	cl.Abort()
}

// recorder keeps the sizes of the TLS records written through it.
type recorder struct {
	net.Conn
	mu      sync.Mutex
	on      bool
	pending []byte
	records []int
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	if r.on {
		r.pending = append(r.pending, p...)
		for len(r.pending) >= 5 {
			n := int(binary.BigEndian.Uint16(r.pending[3:5]))
			if len(r.pending) < 5+n {
				break
			}
			r.records = append(r.records, n)
			r.pending = r.pending[5+n:]
		}
	}
	r.mu.Unlock()
	return r.Conn.Write(p)
}

// TestLazyTLS: a lazy session over TLS; the server's answers go in records
// CRIU's lazy-pages daemon can read: each header in a record of its own,
// data in records of at most 16 KiB inside their answer.
func TestLazyTLS(t *testing.T) {
	ca := testpki.New(t, "gockpt test CA")
	srvCert, srvKey := ca.Issue(t, "server", "127.0.0.1")
	cliCert, cliKey := ca.Issue(t, "client", "client")
	sc, err := TLS{Enabled: true, CACert: ca.CA(), Cert: srvCert, Key: srvKey}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := TLS{Enabled: true, CACert: ca.CA(), Cert: cliCert, Key: cliKey}.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	src := &patterned{}
	a, b := pair(t)
	rec := &recorder{Conn: b}
	done := make(chan lazyResult, 1)
	go func() {
		tc := tls.Server(rec, sc)
		if err := tc.Handshake(); err != nil {
			done <- lazyResult{err: err}
			return
		}
		rec.mu.Lock()
		rec.on = true
		rec.mu.Unlock()
		got, err := ServeLazy(tc, src, "test peer")
		b.Close()
		done <- lazyResult{got, err}
	}()
	c, err := newClient(a, "test server", cc)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100*pagemap.PageSize)
	asks := []uint64{1, 100, 5, 37}
	for i, nr := range asks {
		vaddr := uint64(0x10000 + i*0x1000000)
		n, err := c.Get(1234, vaddr, nr, buf)
		if err != nil || n != min(nr, 64) {
			t.Fatalf("Get(%d pages): %d, %v", nr, n, err)
		}
		if err := checkPattern(buf[:n*pagemap.PageSize], vaddr); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Get(1234, 0x1000, 1, buf); !errors.Is(err, ErrNoLazyPages) {
		t.Fatalf("Get of nothing: %v", err)
	}
	r := <-done
	if r.err == nil || !strings.HasSuffix(r.err.Error(), ": no run there: answered 0 pages and ended the session") {
		t.Fatal(r.err)
	}
	// TLS 1.3: 17 bytes of overhead in each record.
	const over = 17
	var want []int
	for _, nr := range asks {
		want = append(want, iovSize+over)
		for left := int(min(nr, 64)) * pagemap.PageSize; left > 0; left -= tlsRecord {
			want = append(want, min(left, tlsRecord)+over)
		}
	}
	want = append(want, iovSize+over)
	rec.mu.Lock()
	got := rec.records
	rec.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("TLS records of the answers %v\nwant %v", got, want)
	}
}

// patterned has runs of at most 64 lazy pages from 0x10000 on, every
// 16 MiB, each byte telling its address.
type patterned struct{}

func (patterned) LazyRun(pid int, vaddr, max uint64) (uint64, error) {
	off := vaddr % 0x1000000
	if vaddr < 0x10000 || off < 0x10000 || off >= 0x10000+64*pagemap.PageSize {
		return 0, errors.New("no run there")
	}
	return min(max, (0x10000+64*pagemap.PageSize-off)/pagemap.PageSize), nil
}

func (patterned) ReadLazy(pid int, vaddr uint64, p []byte) error {
	for i := range p {
		p[i] = byte((vaddr + uint64(i)) / 7)
	}
	return nil
}

func checkPattern(p []byte, vaddr uint64) error {
	for i := range p {
		if p[i] != byte((vaddr+uint64(i))/7) {
			return fmt.Errorf("byte %#x differs", vaddr+uint64(i))
		}
	}
	return nil
}

// TestServeLazyOneTLSRefused: a client without the CA's certificate is
// refused before it can ask anything.
func TestServeLazyOneTLSRefused(t *testing.T) {
	ca := testpki.New(t, "gockpt test CA")
	srvCert, srvKey := ca.Issue(t, "server", "127.0.0.1")
	rogue := testpki.New(t, "rogue CA")
	rogueCert, rogueKey := rogue.Issue(t, "rogue", "127.0.0.1")
	sc, err := TLS{Enabled: true, CACert: ca.CA(), Cert: srvCert, Key: srvKey}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := ServeLazyOne(ln, patterned{}, sc)
		done <- err
	}()
	cc, err := TLS{Enabled: true, CACert: ca.CA(), Cert: rogueCert, Key: rogueKey}.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Dial(ln.Addr().String(), cc); err == nil {
		// TLS 1.3: the client learns of the refusal at its first read.
		if _, err := c.Get(1, 0x10000, 1, make([]byte, pagemap.PageSize)); err == nil {
			t.Fatal("a client of another CA got pages")
		}
		c.Abort()
	}
	serr := <-done
	if serr == nil || !strings.HasPrefix(serr.Error(), "page server: TLS handshake with 127.0.0.1:") ||
		!strings.Contains(serr.Error(), "certificate signed by unknown authority") || !strings.HasSuffix(serr.Error(), ": refused") {
		t.Fatalf("server: %v", serr)
	}
}
