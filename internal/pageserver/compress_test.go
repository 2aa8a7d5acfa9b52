package pageserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/testpki"
)

// tlsConfigs makes a server's and a client's TLS configuration of one CA.
func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
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
	return sc, cc
}

// serveConn runs serve on one end of a TCP connection (TLS inside when
// useTLS) and returns a client on the other end.
func serveConn(t *testing.T, useTLS bool, serve func(io.ReadWriter) error) (*Client, chan error) {
	t.Helper()
	var sc, cc *tls.Config
	if useTLS {
		sc, cc = tlsConfigs(t)
	}
	a, b := pair(t)
	done := make(chan error, 1)
	go func() {
		var rw io.ReadWriter = b
		if sc != nil {
			tc := tls.Server(b, sc)
			if err := tc.Handshake(); err != nil {
				b.Close()
				done <- err
				return
			}
			rw = tc
		}
		err := serve(rw)
		b.Close()
		done <- err
	}()
	c, err := newClient(a, "test server", cc)
	if err != nil {
		t.Fatal(err)
	}
	return c, done
}

// heapPages makes n pages as a heap has them: a third zeros, a third
// text, a third random.
func heapPages(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"page ", "server ", "gockpt ", "checkpoint ", "restore ", "memory ", "the ", "of ", "{\"key\": ", "12345, "}
	out := make([]byte, 0, n*pagemap.PageSize)
	for i := range n {
		p := make([]byte, pagemap.PageSize)
		switch i % 3 {
		case 1:
			var b []byte
			for len(b) < len(p) {
				b = append(b, words[r.IntN(len(words))]...)
			}
			copy(p, b)
		case 2:
			for j := range p {
				p[j] = byte(r.Uint32())
			}
		}
		out = append(out, p...)
	}
	return out
}

// TestCompressReceive: a dump's pages compressed, plain and inside TLS,
// with the answers compressed too or not: the images hold what was sent,
// and fewer bytes went over the wire.
func TestCompressReceive(t *testing.T) {
	data := heapPages(300, 1)
	for _, useTLS := range []bool{false, true} {
		for _, dirs := range []Direction{CompressSent, CompressSent | CompressAnswers} {
			t.Run(fmt.Sprintf("tls=%v/%s", useTLS, dirs), func(t *testing.T) {
				dir := newDir(t)
				var got Received
				c, done := serveConn(t, useTLS, func(rw io.ReadWriter) (err error) {
					got, err = Receive(rw, dir, "test peer")
					return err
				})
				if err := c.Compress(dirs); err != nil {
					t.Fatal(err)
				}
				if c.Compressed() != dirs {
					t.Fatalf("Compressed() = %v", c.Compressed())
				}
				if has, err := c.HasParent(Task(100)); err != nil || has {
					t.Fatalf("HasParent: %v, %v", has, err)
				}
				s, _, err := c.Open(Task(100))
				if err != nil {
					t.Fatal(err)
				}
				s.Add(pagemap.Entry{Vaddr: 0x100000, NrPages: 200, Flags: pagemap.FlagPresent})
				s.Add(pagemap.Entry{Vaddr: 0x400000, NrPages: 3, Flags: pagemap.FlagLazy})
				s.Add(pagemap.Entry{Vaddr: 0x800000, NrPages: 50, Flags: pagemap.FlagPresent})
				// Odd pieces, as the dump's reads may be.
				for rest := data[:250*pagemap.PageSize]; len(rest) > 0; {
					n := min(len(rest), 12345)
					if _, err := s.Write(rest[:n]); err != nil {
						t.Fatal(err)
					}
					rest = rest[n:]
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s, _, err = c.Open(Shmem(9))
				if err != nil {
					t.Fatal(err)
				}
				s.Add(pagemap.Entry{Vaddr: 0, NrPages: 50, Flags: pagemap.FlagPresent})
				s.Write(data[250*pagemap.PageSize:])
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
				if n := names(t, dir); strings.Join(n, " ") != strings.Join(want, " ") {
					t.Fatalf("files %v, want %v", n, want)
				}
				checkImage(t, dir, "pagemap-100.img", map[uint64][]byte{0x100000: data[:200*pagemap.PageSize], 0x800000: data[200*pagemap.PageSize : 250*pagemap.PageSize]})
				checkImage(t, dir, "pagemap-shmem-9.img", map[uint64][]byte{0: data[250*pagemap.PageSize:]})
				if got.Compressed != dirs || got.Bytes != uint64(len(data)) || got.Lazy != 3 {
					t.Fatalf("received %+v", got)
				}
				sent, _ := c.Wire()
				// A third of the pages is random: more than that, less
				// than half of it.
				if got.Wire > got.Bytes/2 || got.Wire < got.Bytes/3 {
					t.Fatalf("%d bytes of pages took %d bytes on the wire", got.Bytes, got.Wire)
				}
				if !useTLS && sent != got.Wire {
					t.Fatalf("the client sent %d bytes, the server read %d", sent, got.Wire)
				}
			})
		}
	}
}

// checkImage compares a pagemap's pages with want (by address).
func checkImage(t *testing.T, dir *images.Dir, name string, want map[uint64][]byte) {
	t.Helper()
	r, err := pagemap.OpenNamed(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for addr, w := range want {
		got := make([]byte, len(w))
		if err := r.ReadAt(got, addr); err != nil || !bytes.Equal(got, w) {
			t.Fatalf("%s: pages at %#x differ (%v)", name, addr, err)
		}
	}
}

// TestCompressLazy: a lazy session's answers compressed, plain and inside
// TLS: every GET brings its pages, a GET of nothing ends the session as
// uncompressed, and so does CLOSE.
func TestCompressLazy(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		for _, dirs := range []Direction{CompressAnswers, CompressSent | CompressAnswers} {
			t.Run(fmt.Sprintf("tls=%v/%s", useTLS, dirs), func(t *testing.T) {
				var got Served
				serve := func(rw io.ReadWriter) (err error) {
					got, err = ServeLazy(rw, patterned{}, "test peer")
					return err
				}
				c, done := serveConn(t, useTLS, serve)
				if err := c.Compress(dirs); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100*pagemap.PageSize)
				var pages uint64
				for i, nr := range []uint64{1, 100, 5, 37, 64} {
					vaddr := uint64(0x10000 + i*0x1000000)
					n, err := c.Get(1234, vaddr, nr, buf)
					if err != nil || n != min(nr, 64) {
						t.Fatalf("Get(%d pages): %d, %v", nr, n, err)
					}
					if err := checkPattern(buf[:n*pagemap.PageSize], vaddr); err != nil {
						t.Fatal(err)
					}
					pages += n
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if got.Compressed != dirs || got.Pages != pages || got.Wire*4 > got.Bytes {
					t.Fatalf("served %+v", got)
				}
				if _, received := c.Wire(); !useTLS && received != got.Wire {
					t.Fatalf("the client read %d bytes, the server wrote %d", received, got.Wire)
				}

				// Nothing there: 0 pages, and the session ends.
				c, done = serveConn(t, useTLS, serve)
				if err := c.Compress(dirs); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Get(1234, 0x10000, 2, buf); err != nil {
					t.Fatal(err)
				}
				_, err := c.Get(1234, 0x1000, 1, buf)
				if want := "page server test server: task 1234: no lazy pages at 0x1000: the server ended the session: see its log"; err == nil || err.Error() != want || !errors.Is(err, ErrNoLazyPages) {
					t.Fatalf("Get of nothing: %v\nwant %q", err, want)
				}
				if serr := <-done; serr == nil || serr.Error() != "page server: lazy session with test peer: asked for 1 pages at 0x1000: no run there: answered 0 pages and ended the session" {
					t.Fatalf("server: %v", serr)
				}
			})
		}
	}
}

// TestCompressRefused: what each side says when compression cannot be
// had.
func TestCompressRefused(t *testing.T) {
	receive := func(dir *images.Dir) func(io.ReadWriter) error {
		return func(rw io.ReadWriter) error {
			_, err := Receive(rw, dir, "test peer")
			return err
		}
	}
	lazy := func(rw io.ReadWriter) error {
		_, err := ServeLazy(rw, patterned{}, "test peer")
		return err
	}
	for _, c := range []struct {
		name         string
		alg          uint64
		dirs         Direction
		client, srvr string
	}{
		{"unknown algorithm", 99, CompressSent,
			"the page server at test server does not know compression algorithm 99 (a gockpt of another version?): drop --compress",
			"the peer asked for compression algorithm 99, which this gockpt does not know (it knows zstd, 1): refused"},
		{"unknown direction", algZstd, 4,
			"the page server at test server does not compress directions 0x4: drop --compress",
			"the peer asked to compress directions 0x4 (1: what it sends, 2: the answers): refused"},
		{"no direction", algZstd, 0,
			"the page server at test server does not compress nothing: drop --compress",
			"the peer asked to compress directions 0x0 (1: what it sends, 2: the answers): refused"},
	} {
		for _, useTLS := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/tls=%v", c.name, useTLS), func(t *testing.T) {
				dir := newDir(t)
				cl, done := serveConn(t, useTLS, receive(dir))
				if err := cl.compress(c.alg, c.dirs); err == nil || err.Error() != c.client {
					t.Fatalf("client: %v\nwant %q", err, c.client)
				}
				// The session is over.
				if _, _, err := cl.Open(Task(1)); err == nil || err.Error() != c.client {
					t.Fatalf("Open after the refusal: %v", err)
				}
				want := "page server: session with test peer: " + c.srvr + "; nothing from it was written to " + dir.Path()
				if err := <-done; err == nil || err.Error() != want {
					t.Fatalf("server: %v\nwant %q", err, want)
				}
				if n := names(t, dir); len(n) != 0 {
					t.Fatalf("the refused session left %v", n)
				}

				cl, done = serveConn(t, useTLS, lazy)
				if err := cl.compress(c.alg, c.dirs); err == nil || err.Error() != c.client {
					t.Fatalf("lazy client: %v\nwant %q", err, c.client)
				}
				want = "page server: lazy session with test peer: " + c.srvr
				if err := <-done; err == nil || err.Error() != want {
					t.Fatalf("lazy server: %v\nwant %q", err, want)
				}
			})
		}
	}

	t.Run("not first", func(t *testing.T) {
		dir := newDir(t)
		cl, done := serveConn(t, false, receive(dir))
		if _, err := cl.HasParent(Task(1)); err != nil {
			t.Fatal(err)
		}
		if err := cl.Compress(CompressSent); err == nil || err.Error() != "page server test server: compression is asked for first, before any other command" {
			t.Fatalf("client: %v", err)
		}
		cl.Abort()
		<-done
		// A client that asks anyway: refused with 3, after the answer
		// to the first command.
		get := iov{cmd: cmdGet, nrPages: 1, vaddr: 0x10000, dstID: 1}
		getAnswer := wire(iov{cmd: cmdAddF, flags: pagemap.FlagPresent, nrPages: 1, vaddr: 0x10000, dstID: 1}, make([]byte, pagemap.PageSize))
		patterned{}.ReadLazy(1, 0x10000, getAnswer[iovSize:])
		for _, c := range []struct {
			serve  func(io.ReadWriter) error
			first  iov
			answer []byte
			prefix string
		}{
			{receive(newDir(t)), iov{cmd: cmdParent, dstID: Task(1).dstID()}, []byte{0, 0, 0, 0}, "page server: session with test peer: "},
			{lazy, get, getAnswer, "page server: lazy session with test peer: "},
		} {
			a, b := pair(t)
			answers := make(chan []byte, 1)
			go func() {
				a.Write(wire(c.first, compressCmd(algZstd, CompressSent)))
				got, _ := io.ReadAll(a)
				answers <- got
			}()
			err := c.serve(b)
			b.Close()
			if want := c.prefix + "the peer asked for compression after other commands: refused (COMPRESS comes first)"; err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("server: %v\nwant %q", err, want)
			}
			if got := <-answers; !bytes.Equal(got, append(c.answer, compressNotFirst)) {
				t.Fatalf("answers %x", got)
			}
		}
	})

	t.Run("no magic", func(t *testing.T) {
		dir := newDir(t)
		a, b := pair(t)
		raw(t, a, iov{cmd: cmdCompress, nrPages: algZstd, vaddr: 1})
		_, err := Receive(b, dir, "test peer")
		if err == nil || !strings.Contains(err.Error(), ": unexpected command 0x6763: not CRIU's page-server protocol;") {
			t.Fatalf("server: %v", err)
		}
	})

	// A server that ends the session at COMPRESS (CRIU's, a gockpt's
	// from before compression), plain and inside TLS.
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("unknown command/tls=%v", useTLS), func(t *testing.T) {
			cl, done := serveConn(t, useTLS, func(rw io.ReadWriter) error {
				var b [iovSize]byte
				_, err := io.ReadFull(rw, b[:])
				return err
			})
			want := "the page server at test server does not take --compress (a CRIU page server?): drop --compress"
			if err := cl.Compress(CompressSent); err == nil || err.Error() != want {
				t.Fatalf("client: %v\nwant %q", err, want)
			}
			if err := cl.Close(); err == nil || err.Error() != want {
				t.Fatalf("Close after the refusal: %v", err)
			}
			<-done
		})
	}
}

// criuBinary is $GOCKPT_TEST_CRIU; the test is skipped without it.
func criuBinary(t *testing.T) string {
	t.Helper()
	criu := os.Getenv("GOCKPT_TEST_CRIU")
	if criu == "" {
		t.Skip("GOCKPT_TEST_CRIU names no CRIU binary")
	}
	return criu
}

// TestCompressCRIU: CRIU 4.2's page server, asked for compression, ends
// the session at the unknown command, plain and over TLS; the client says
// to drop --compress. (CRIU's lazy page server needs the images of a dump:
// cmd/gockpt's TestCompressCRIUPageServer asks it.)
func TestCompressCRIU(t *testing.T) {
	criu := criuBinary(t)
	ca := testpki.New(t, "gockpt test CA")
	srvCert, srvKey := ca.Issue(t, "server", "127.0.0.1")
	cliCert, cliKey := ca.Issue(t, "client", "client")
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			dir := t.TempDir()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			args := []string{"page-server", "-D", dir, "--address", "127.0.0.1", "--port", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "-o", "ps.log", "-v4"}
			var cc *tls.Config
			if useTLS {
				args = append(args, "--tls", "--tls-cacert", ca.CA(), "--tls-cert", srvCert, "--tls-key", srvKey)
				if cc, err = (TLS{Enabled: true, CACert: ca.CA(), Cert: cliCert, Key: cliKey}).ClientConfig("127.0.0.1"); err != nil {
					t.Fatal(err)
				}
			}
			ps := exec.Command(criu, args...)
			if err := ps.Start(); err != nil {
				t.Fatal(err)
			}
			psDone := make(chan error, 1)
			go func() { psDone <- ps.Wait() }()
			defer func() {
				ps.Process.Kill()
				<-psDone
			}()
			var c *Client
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if c, err = Dial(addr, cc); err == nil {
					break
				}
				if time.Now().After(deadline) {
					b, _ := os.ReadFile(filepath.Join(dir, "ps.log"))
					t.Fatalf("CRIU's page server does not listen: %v\n%s", err, b)
				}
			}
			want := "the page server at " + addr + " does not take --compress (a CRIU page server?): drop --compress"
			if err := c.Compress(CompressSent); err == nil || err.Error() != want {
				t.Fatalf("client: %v\nwant %q", err, want)
			}
			select {
			case err := <-psDone:
				psDone <- err
				if err == nil {
					t.Fatal("CRIU's page server exited 0")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("CRIU's page server still runs")
			}
			b, _ := os.ReadFile(filepath.Join(dir, "ps.log"))
			if !bytes.Contains(b, []byte("Unknown command")) {
				t.Fatalf("CRIU's log does not say why:\n%s", b)
			}
		})
	}
}

// encode compresses parts (commands and data) as a client does: flush
// marks where it would wait for an answer.
func encode(parts ...any) []byte {
	var out bytes.Buffer
	enc := newEncoder(&out)
	for _, p := range parts {
		switch p := p.(type) {
		case iov:
			enc.Write(wire(p))
		case []byte:
			enc.Write(p)
		case string: // "flush"
			enc.Flush()
		}
	}
	enc.Flush()
	return out.Bytes()
}

// TestZReaderFraming: one frame, block by block as it comes, read
// whatever pieces the connection gives; anything but one zstd frame is
// refused.
func TestZReaderFraming(t *testing.T) {
	data := heapPages(100, 2)
	stream := encode(data[:12345], "flush", data[12345:])
	for _, r := range []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r },
		iotest.OneByteReader,
		iotest.HalfReader,
		iotest.DataErrReader,
	} {
		got, err := io.ReadAll(newZReader(r(bytes.NewReader(stream))))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("decoded %d bytes of %d: %v", len(got), len(data), err)
		}
	}

	// A frame with its end and a checksum (not what gockpt sends, but
	// zstd), byte by byte.
	var closed bytes.Buffer
	enc := newEncoder(&closed)
	if err := enc.ResetWithOptions(&closed, zstd.WithEncoderCRC(true)); err != nil {
		t.Fatal(err)
	}
	enc.Write(data)
	enc.Close()
	if got, err := io.ReadAll(newZReader(iotest.OneByteReader(bytes.NewReader(closed.Bytes())))); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("closed frame: %d bytes, %v", len(got), err)
	}

	// A stream cut short: what came is read, then the connection's EOF
	// (the session says where it was cut).
	if got, err := io.ReadAll(newZReader(bytes.NewReader(stream[:len(stream)/2]))); err != nil || len(got) == 0 || len(got) >= len(data) || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("cut stream: %d bytes, %v", len(got), err)
	}

	skippable := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"skippable frame", append(skippable, stream...), "bad compressed stream: the stream does not start with a zstd frame (it starts with 502a4d18)"},
		{"not zstd", wire(iov{cmd: cmdOpen2, dstID: Task(1).dstID()}), "bad compressed stream: the stream does not start with a zstd frame (it starts with 04000000)"},
		{"after the end", append(closed.Bytes(), skippable...), "bad compressed stream: data after the end of the zstd frame"},
		{"huge window", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0xa0, 1, 0, 0}, "bad compressed stream: window size exceeded"},

		{"empty", nil, "EOF"},
	} {
		got, err := io.ReadAll(newZReader(bytes.NewReader(c.in)))
		if c.want == "EOF" { // ReadAll takes io.EOF for the end
			if err != nil || len(got) != 0 {
				t.Errorf("%s: %d bytes, %v", c.name, len(got), err)
			}
			continue
		}
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v\nwant %q", c.name, err, c.want)
		}
		if c.name == "after the end" && !bytes.Equal(got, data) {
			t.Errorf("%s: the frame before was not all read", c.name)
		}
	}
}

// bomb is a stream of 1 GiB of zeros, compressed to a few KiB.
var bomb = sync.OnceValue(func() []byte {
	var out bytes.Buffer
	enc := newEncoder(&out)
	zero := make([]byte, 1<<20)
	for range 1 << 10 {
		enc.Write(zero)
	}
	enc.Flush()
	return out.Bytes()
})

// TestDecompressionBomb: decompressing 1 GiB out of a few KiB takes no
// more memory than the window, read in small pieces as the server reads.
func TestDecompressionBomb(t *testing.T) {
	in := bomb()
	if len(in) > 1<<20 {
		t.Fatalf("the bomb is %d bytes", len(in))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{newZReader(bytes.NewReader(in))}, make([]byte, 64<<10))
	runtime.ReadMemStats(&after)
	if err != nil || n != 1<<30 {
		t.Fatalf("decoded %d bytes: %v", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 3*maxWindow {
		t.Fatalf("decoding the bomb allocated %d bytes", alloc)
	}
}

// FuzzReceiveCompressed feeds a page server a compressed stream of
// anything after COMPRESS: it must never panic, never hold more than its
// window, and a session it refuses leaves the directory empty.
func FuzzReceiveCompressed(f *testing.F) {
	t7 := Task(7).dstID()
	f.Add(encode(iov{cmd: cmdOpen2, dstID: t7}, "flush", iov{cmd: cmdAddF, flags: pagemap.FlagPresent, vaddr: 0x1000, nrPages: 2, dstID: t7},
		heapPages(2, 3), iov{cmd: cmdClose}))
	f.Add(encode(iov{cmd: cmdOpen2, dstID: t7}, iov{cmd: cmdAddF, flags: pagemap.FlagPresent, vaddr: 0x1000, nrPages: 1 << 18, dstID: t7})[:20])
	f.Add(bomb()[:4096])
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0xa0, 1, 0, 0})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := newDir(t)
		_, err := Receive(rw{bytes.NewReader(append(wire(compressCmd(algZstd, CompressSent)), in...)), io.Discard}, dir, "fuzz")
		if err != nil {
			if got := names(t, dir); len(got) != 0 {
				t.Fatalf("refused session (%v) left %v", err, got)
			}
		}
	})
}

// FuzzGetCompressed feeds a lazy-pages client compressed answers of
// anything: Get must never panic nor fill more than it asked for.
func FuzzGetCompressed(f *testing.F) {
	ans := func(n uint64, vaddr uint64) iov {
		return iov{cmd: cmdAddF, flags: pagemap.FlagPresent, nrPages: n, vaddr: vaddr, dstID: 100}
	}
	f.Add(encode(ans(1, 0x1000), page(1), "flush", ans(2, 0x2000), page(2), page(3)))
	f.Add(encode(ans(4, 0x1000), bytes.Repeat([]byte{9}, 4*pagemap.PageSize)))
	f.Add(bomb()[:2048])
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := pair(t)
		go func() {
			defer b.Close()
			var cmd [iovSize]byte
			if _, err := io.ReadFull(b, cmd[:]); err != nil {
				return
			}
			b.Write(append([]byte{compressOK}, in...))
			// The end of the answers: the client reads EOF after them.
			b.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, b)
		}()
		c, err := newClient(a, "fuzz", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Compress(CompressAnswers); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5*pagemap.PageSize)
		guard := bytes.Repeat([]byte{0xee}, pagemap.PageSize)
		copy(buf[4*pagemap.PageSize:], guard)
		for i := uint64(0); i < 4; i++ {
			n, err := c.Get(100, 0x1000*(i+1), 4, buf[:4*pagemap.PageSize])
			if err != nil {
				break
			}
			if n == 0 || n > 4 {
				t.Fatalf("Get: %d pages", n)
			}
		}
		if !bytes.Equal(buf[4*pagemap.PageSize:], guard) {
			t.Fatal("Get wrote past what it asked for")
		}
		c.Abort()
	})
}
