package pageserver

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/log"
)

// The lazy (post-copy) half of the protocol: a lazy-pages daemon on the
// restoring side asks for pages with GET {nr_pages, vaddr, dst_id}, where
// dst_id is the task's PID as it is (not OPEN's type|id encoding). The
// server answers each GET with an ADD_F header (PE_PRESENT, the same vaddr
// and dst_id, nr_pages at most what was asked: the run of lazy pages it
// holds from vaddr on) and the data of those pages. The session ends with
// CLOSE or FORCE_CLOSE, answered with an int32 status.
//
// Where CRIU 4.2's server closes the connection when it has no lazy page
// at vaddr, gockpt's answers with an ADD_F header of 0 pages (flags 0, no
// data) first, then ends the session as CRIU does. Both clients read that
// right: gockpt's Client.Get reports ErrNoLazyPages rather than a
// connection closed without an answer, and CRIU's lazy-pages daemon, which
// goes back to epoll after a header and waits for the data, fails the
// restore at the hang-up (or at the 0 pages it cannot copy). A 0-page
// answer alone, the session going on, would leave CRIU's daemon waiting
// for data that never comes, spinning for ever.

// maxGetPages bounds the answer to one GET: 1 GiB. A longer request gets
// a shorter answer, which the protocol allows.
const maxGetPages = 1 << 30 / pagemap.PageSize

// lazyBufSize is the most data one ReadLazy call fills: the server never
// holds more of an answer than this.
const lazyBufSize = 256 << 10

// ErrNoLazyPages means the page server holds no lazy page at the address
// a GET named: it answered 0 pages.
var ErrNoLazyPages = errors.New("no lazy pages")

// PageSource holds the lazy pages a lazy page server serves.
type PageSource interface {
	// LazyRun returns how many pages, at most max (> 0), the source
	// holds of task pid as one run of lazy pages from vaddr on. When it
	// holds none there, it returns an error saying why: the client is
	// answered 0 pages and the session ends with that error.
	LazyRun(pid int, vaddr, max uint64) (uint64, error)
	// ReadLazy fills p with the memory of task pid from vaddr on, inside
	// a run LazyRun reported. An error ends the session: the answer's
	// header has already gone.
	ReadLazy(pid int, vaddr uint64, p []byte) error
}

// Served is what one lazy session asked for and got.
type Served struct {
	Requests uint64 // GETs
	Pages    uint64 // pages sent
	Bytes    uint64
	// Wire counts the bytes written to the connection: answers and
	// data, compressed when the peer asked for it (Compressed).
	Wire       uint64
	Compressed Direction
	Took       time.Duration
}

// ServeLazy serves one session of a lazy-pages daemon on conn from src:
// GETs until CLOSE or FORCE_CLOSE, which is answered with status 0. A GET
// the source has nothing for is answered with 0 pages and ends the session
// with an error; so does any other command, and a peer that hangs up
// without closing the session: CRIU's lazy-pages daemon always closes it,
// even when its restore failed, so an EOF means it died or was killed, and
// whether it had all it needed cannot be known.
//
// Over TLS (conn is a *tls.Conn) each answer's header goes in a record of
// its own and its data in records of at most 16 KiB that never reach into
// the next answer: CRIU's daemon reads the header, then waits on the
// socket for the data, and GnuTLS would hold back whatever else a record
// carried. A gockpt client that asked for compressed answers (COMPRESS)
// is no CRIU daemon: its answers go as the compressor makes them.
func ServeLazy(conn io.ReadWriter, src PageSource, peer string) (Served, error) {
	begin := time.Now()
	s := newLazySession(conn, src, peer)
	err := s.serve()
	s.got.Took = time.Since(begin)
	if err != nil {
		return s.got, fmt.Errorf("page server: lazy session with %s: %w", peer, err)
	}
	return s.got, nil
}

type lazySession struct {
	r    io.Reader
	w    io.Writer
	bw   *bufio.Writer // nil over TLS
	enc  *zstd.Encoder // compresses the answers (COMPRESS), over bw
	wire *countWriter
	cmds int // commands read
	conn io.ReadWriter
	// record bounds each write of data (TLS); 0: no bound.
	record int
	src    PageSource
	peer   string
	buf    []byte
	got    Served
}

func newLazySession(conn io.ReadWriter, src PageSource, peer string) *lazySession {
	wire := &countWriter{w: conn}
	s := &lazySession{r: conn, w: wire, wire: wire, conn: conn, src: src, peer: peer, buf: make([]byte, lazyBufSize)}
	if _, ok := conn.(*tls.Conn); ok {
		// Each Write is one or more whole records: nothing may merge
		// a header with data.
		s.record = tlsRecord
	} else {
		s.bw = bufio.NewWriterSize(wire, lazyBufSize+iovSize)
		s.w = s.bw
	}
	return s
}

// deadline bounds the next writes: a daemon that stops reading must not
// hold the server for ever.
func (s *lazySession) deadline() {
	if d, ok := s.conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
		d.SetWriteDeadline(time.Now().Add(stallTimeout))
	}
}

// flush pushes the answer written: the compressor's block, then the
// buffer.
func (s *lazySession) flush() error {
	if s.enc != nil {
		if err := s.enc.Flush(); err != nil {
			return err
		}
	}
	if s.bw == nil {
		return nil
	}
	return s.bw.Flush()
}

// compress answers COMPRESS: from now on the session reads and answers
// through the decompressor and the compressor asked for.
func (s *lazySession) compress(v iov) error {
	s.deadline()
	r, enc, err := serverCompress(v, s.cmds == 1, s.r, s.w, s.flush)
	if err != nil {
		return err
	}
	s.r = r
	if enc != nil {
		// The client is gockpt's: records need not be whole.
		s.enc, s.w, s.record = enc, enc, 0
	}
	s.got.Compressed = Direction(v.vaddr)
	return nil
}

func (s *lazySession) serve() error {
	defer func() { s.got.Wire = s.wire.n }()
	var b [iovSize]byte
	for {
		if _, err := io.ReadFull(s.r, b[:]); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				return fmt.Errorf("the peer hung up without closing the session, after %d requests (%d pages): did the lazy-pages daemon die?", s.got.Requests, s.got.Pages)
			case errors.Is(err, io.ErrUnexpectedEOF):
				return errors.New("the peer hung up in the middle of a command")
			}
			return fmt.Errorf("reading a command: %w", err)
		}
		s.cmds++
		v := parseIOV(b[:])
		if isCompress(v) {
			if err := s.compress(v); err != nil {
				return err
			}
			continue
		}
		switch v.cmd {
		case cmdGet:
			if err := s.get(v); err != nil {
				return err
			}
		case cmdClose, cmdForceClose:
			return s.close(v.cmd == cmdClose)
		default:
			return fmt.Errorf("unexpected command %s in a lazy page server session: it only serves pages (GET) and receives none", cmdName(v))
		}
	}
}

// cmdName names a command for errors.
func cmdName(v iov) string {
	names := map[uint32]string{cmdAdd: "ADD", cmdHole: "HOLE", cmdOpen: "OPEN", cmdOpen2: "OPEN2",
		cmdParent: "PARENT", cmdAddF: "ADD_F", cmdGet: "GET", cmdClose: "CLOSE", cmdForceClose: "FORCE_CLOSE"}
	if isCompress(v) {
		return fmt.Sprintf("COMPRESS (%#x)", v.cmd)
	}
	if n, ok := names[v.cmd]; ok {
		return fmt.Sprintf("%s (%d)", n, v.cmd)
	}
	return fmt.Sprintf("%#x", v.cmd|v.flags<<cmdBits)
}

// get answers one GET.
func (s *lazySession) get(v iov) error {
	s.got.Requests++
	var n uint64
	var why error
	switch {
	case v.dstID == 0 || v.dstID > maxID:
		why = fmt.Errorf("%d is not a PID", v.dstID)
	case v.vaddr%pagemap.PageSize != 0:
		why = fmt.Errorf("task %d: the address is not page-aligned", v.dstID)
	case v.nrPages == 0:
		why = fmt.Errorf("task %d: 0 pages asked for", v.dstID)
	default:
		n, why = s.src.LazyRun(int(v.dstID), v.vaddr, min(v.nrPages, maxGetPages))
		if why == nil && n == 0 {
			why = fmt.Errorf("task %d: %w", v.dstID, ErrNoLazyPages)
		}
	}
	if why != nil {
		return s.refuse(v, why)
	}
	if n > min(v.nrPages, maxGetPages) {
		return fmt.Errorf("task %d, pages at %#x: the page source offers %d pages where %d were asked", v.dstID, v.vaddr, n, v.nrPages)
	}
	if err := s.header(v, pagemap.FlagPresent, n); err != nil {
		return err
	}
	addr := v.vaddr
	for left := n * pagemap.PageSize; left > 0; {
		chunk := s.buf[:min(left, uint64(len(s.buf)))]
		if err := s.src.ReadLazy(int(v.dstID), addr, chunk); err != nil {
			return fmt.Errorf("task %d: reading %d bytes at %#x: %w", v.dstID, len(chunk), addr, err)
		}
		s.deadline()
		for p := chunk; len(p) > 0; {
			w := p
			if s.record > 0 && len(w) > s.record {
				w = w[:s.record]
			}
			if _, err := s.w.Write(w); err != nil {
				return s.lost(err)
			}
			p = p[len(w):]
		}
		addr += uint64(len(chunk))
		left -= uint64(len(chunk))
	}
	if err := s.flush(); err != nil {
		return s.lost(err)
	}
	s.got.Pages += n
	s.got.Bytes += n * pagemap.PageSize
	log.Debugf("page server: %s: task %d: %d of %d pages at %#x", s.peer, v.dstID, n, v.nrPages, v.vaddr)
	return nil
}

// header writes an answer's header, on its own.
func (s *lazySession) header(v iov, flags uint32, n uint64) error {
	s.deadline()
	var b [iovSize]byte
	iov{cmd: cmdAddF, flags: flags, nrPages: n, vaddr: v.vaddr, dstID: v.dstID}.marshal(b[:])
	if _, err := s.w.Write(b[:]); err != nil {
		return s.lost(err)
	}
	return nil
}

// refuse answers a GET with 0 pages and ends the session.
func (s *lazySession) refuse(v iov, why error) error {
	err := fmt.Errorf("asked for %d pages at %#x: %w: answered 0 pages and ended the session", v.nrPages, v.vaddr, why)
	if herr := s.header(v, 0, 0); herr != nil {
		return err
	}
	s.flush()
	return err
}

func (s *lazySession) lost(err error) error {
	return fmt.Errorf("sending an answer: %w: the lazy-pages daemon went away or stopped reading", err)
}

// close answers the end of the session. A peer that closed it (rather
// than forcing it closed) hangs up next.
func (s *lazySession) close(wait bool) error {
	var b [4]byte
	// The daemon has every page: a source that must act on it (a dump
	// killing its tree) does so before the daemon hears the status.
	if d, ok := s.src.(interface{ Delivered() error }); ok {
		if err := d.Delivered(); err != nil {
			binary.LittleEndian.PutUint32(b[:], 0xffffffff)
			s.w.Write(b[:])
			s.flush()
			return err
		}
	}
	s.deadline()
	if _, err := s.w.Write(b[:]); err != nil {
		log.Warnf("page server: %s did not take the final status: %v", s.peer, err)
		return nil
	}
	if err := s.flush(); err != nil {
		log.Warnf("page server: %s did not take the final status: %v", s.peer, err)
		return nil
	}
	if !wait {
		return nil
	}
	var c [1]byte
	if n, _ := s.r.Read(c[:]); n != 0 {
		log.Warnf("page server: %s sent data after the end of the session", s.peer)
	}
	return nil
}

// ServeLazyOne accepts one connection on ln (a TLS one when tc is set) and
// serves its lazy session from src.
func ServeLazyOne(ln net.Listener, src PageSource, tc *tls.Config) (Served, string, error) {
	conn, rw, peer, err := accept(ln, tc, "refused")
	if err != nil {
		return Served{}, peer, err
	}
	defer conn.Close()
	got, err := ServeLazy(rw, src, peer)
	return got, peer, err
}

// accept takes one connection from ln and does the TLS handshake when tc
// is set; refused ends the error of a failed handshake.
func accept(ln net.Listener, tc *tls.Config, refused string) (net.Conn, io.ReadWriter, string, error) {
	conn, err := ln.Accept()
	if err != nil {
		return nil, nil, "", fmt.Errorf("page server: %w", err)
	}
	peer := conn.RemoteAddr().String()
	log.Infof("page server: session with %s", peer)
	if tc == nil {
		return conn, conn, peer, nil
	}
	t := tls.Server(conn, tc)
	t.SetDeadline(time.Now().Add(dialTimeout))
	if err := t.Handshake(); err != nil {
		conn.Close()
		return nil, nil, peer, fmt.Errorf("page server: TLS handshake with %s: %w: %s", peer, err, refused)
	}
	t.SetDeadline(time.Time{})
	return conn, t, peer, nil
}
