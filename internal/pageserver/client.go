package pageserver

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// Client sends pages to a page server.
type Client struct {
	raw  *bufConn
	conn io.Reader // answers come from here (TLS or raw, decompressed)
	w    io.Writer // commands and data go here (compressed, TLS or raw)
	// zw compresses what is sent (Compress): it is flushed, then raw,
	// whenever an answer is awaited.
	zw         *zstd.Encoder
	compressed Direction
	used       bool // a command other than COMPRESS was sent
	// record, with TLS, is the most one write may carry: each write is one
	// TLS record, and CRIU's page server reads records whole, so none
	// may hold a command with data, nor cross a 64 KiB chunk of a run.
	record uint64
	peer   string
	// open is the stream being sent, nil between targets.
	open *Stream
	err  error // first failure: the session is over
	lazy bool  // the session fetched pages (Get)
	// Sent counts the bytes of page data sent.
	Sent uint64
	// Fetched counts the bytes of page data Get received.
	Fetched uint64
}

// dialTimeout bounds connecting to the server; once connected, the server
// sets the pace.
const dialTimeout = 10 * time.Second

// Addr joins a host and a port as net.Dial wants them.
func Addr(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Dial connects to the page server at addr (host:port), over TLS when tc is
// not nil.
func Dial(addr string, tc *tls.Config) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("page server %s: %w: is `gockpt page-server` (or `criu page-server`) listening there?", addr, err)
	}
	return newClient(conn, addr, tc)
}

// stallTimeout bounds how long the server may take no data, or give no
// answer: a stuck server must not keep a tree frozen for ever.
const stallTimeout = 60 * time.Second

// tlsRecord is TLS's largest record payload.
const tlsRecord = 16 << 10

func newClient(conn net.Conn, addr string, tc *tls.Config) (*Client, error) {
	raw := &bufConn{Conn: conn, bw: bufio.NewWriterSize(conn, 1<<20)}
	c := &Client{raw: raw, conn: raw, w: raw, peer: addr}
	if tc != nil {
		tc = tc.Clone()
		// Full records from the first: CRIU's reader counts on them.
		tc.DynamicRecordSizingDisabled = true
		tconn := tls.Client(raw, tc)
		tconn.SetDeadline(time.Now().Add(dialTimeout))
		if err := tconn.Handshake(); err != nil {
			conn.Close()
			return nil, fmt.Errorf("page server %s: TLS handshake: %w: check --tls-cacert, --tls-cert and --tls-key on both sides", addr, err)
		}
		tconn.SetDeadline(time.Time{})
		c.conn, c.w, c.record = tconn, tconn, tlsRecord
	}
	return c, nil
}

// bufConn buffers writes to a connection and flushes them whenever
// something is read from it: whoever reads waits for an answer to what was
// written. Each write and read may stall at most stallTimeout. It counts
// the bytes that went each way.
type bufConn struct {
	net.Conn
	bw      *bufio.Writer
	out, in uint64
}

func (b *bufConn) Write(p []byte) (int, error) {
	b.Conn.SetWriteDeadline(time.Now().Add(stallTimeout))
	n, err := b.bw.Write(p)
	b.out += uint64(n)
	return n, err
}

func (b *bufConn) Read(p []byte) (int, error) {
	if err := b.Flush(); err != nil {
		return 0, err
	}
	b.Conn.SetReadDeadline(time.Now().Add(stallTimeout))
	n, err := b.Conn.Read(p)
	b.in += uint64(n)
	return n, err
}

func (b *bufConn) Flush() error {
	b.Conn.SetWriteDeadline(time.Now().Add(stallTimeout))
	return b.bw.Flush()
}

// Peer names the server, as given to Dial.
func (c *Client) Peer() string { return c.peer }

// Wire counts the bytes that went over the connection so far, each way:
// compressed (and with TLS's own) where they were.
func (c *Client) Wire() (sent, received uint64) { return c.raw.out, c.raw.in }

// flush pushes what was sent: the compressor's block, then the buffer.
func (c *Client) flush() error {
	if c.zw != nil {
		if err := c.zw.Flush(); err != nil {
			return err
		}
	}
	return c.raw.Flush()
}

func (c *Client) fail(err error) error {
	if c.err == nil {
		c.err = fmt.Errorf("page server %s: %w", c.peer, err)
	}
	return c.err
}

// lost reports a broken connection.
func (c *Client) lost(err error) error {
	return c.fail(fmt.Errorf("the connection broke (%w): the page server died or gave up the session: see its log", err))
}

func (c *Client) send(v iov) error {
	if c.err != nil {
		return c.err
	}
	if v.cmd != cmdCompress {
		c.used = true
	}
	var b [iovSize]byte
	v.marshal(b[:])
	if _, err := c.w.Write(b[:]); err != nil {
		return c.lost(err)
	}
	return nil
}

// answer flushes what was sent and reads the server's n-byte answer.
func (c *Client) answer(what string, n int) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if err := c.flush(); err != nil {
		return nil, c.lost(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.conn, b); err != nil {
		switch {
		case errors.Is(err, errBadStream):
			return nil, c.fail(fmt.Errorf("its answer to %s: %w", what, err))
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, c.fail(fmt.Errorf("closed the connection instead of answering %s: see its log", what))
		}
		return nil, c.lost(err)
	}
	return b, nil
}

// HasParent asks whether the server holds parent images for t.
func (c *Client) HasParent(t Target) (bool, error) {
	if err := c.send(iov{cmd: cmdParent, dstID: t.dstID()}); err != nil {
		return false, err
	}
	b, err := c.answer("whether it has parent images", 4)
	if err != nil {
		return false, err
	}
	return int32(binary.LittleEndian.Uint32(b)) > 0, nil
}

// Open starts sending t's pages. It reports whether the server has parent
// images for t: only then may runs be marked as in the parent. The stream
// must be closed before the next target is opened.
func (c *Client) Open(t Target) (*Stream, bool, error) {
	if c.open != nil {
		return nil, false, fmt.Errorf("page server %s: %s opened while %s is still being sent", c.peer, t, c.open.target)
	}
	if err := c.send(iov{cmd: cmdOpen2, dstID: t.dstID()}); err != nil {
		return nil, false, err
	}
	b, err := c.answer("the opening of "+t.String(), 1)
	if err != nil {
		return nil, false, err
	}
	c.open = &Stream{c: c, target: t}
	return c.open, b[0] != 0, nil
}

// Close ends the session: the server writes its images and answers with
// its status. Only a nil error means the server holds every page sent.
func (c *Client) Close() error {
	defer c.raw.Close()
	if c.open != nil {
		return c.fail(fmt.Errorf("session closed while %s was still being sent", c.open.target))
	}
	if err := c.send(iov{cmd: cmdClose}); err != nil {
		return err
	}
	b, err := c.answer("the end of the session", 4)
	if err != nil {
		return err
	}
	if st := int32(binary.LittleEndian.Uint32(b)); st != 0 {
		if c.lazy {
			return c.fail(fmt.Errorf("the server ended the session with status %d: see its log", st))
		}
		return c.fail(fmt.Errorf("the server failed to write the images (status %d): see its log", st))
	}
	return nil
}

// Get fetches lazy pages of task pid from vaddr on (post-copy, as CRIU's
// lazy-pages daemon does): at most nrPages, which buf must hold. The
// server answers with the run of lazy pages it holds from vaddr on, which
// may be shorter: got pages of buf are filled. An error wrapping
// ErrNoLazyPages means the server holds no lazy page at vaddr (gockpt's
// server answers so; CRIU's closes the connection instead). Any error but
// a refused argument ends the session: both servers end it when they have
// nothing to send.
func (c *Client) Get(pid int, vaddr, nrPages uint64, buf []byte) (got uint64, err error) {
	what := fmt.Sprintf("task %d's pages at %#x", pid, vaddr)
	switch {
	case c.err != nil:
		return 0, c.err
	case c.open != nil:
		return 0, fmt.Errorf("page server %s: %s asked for while %s is still being sent", c.peer, what, c.open.target)
	case pid <= 0 || pid > maxID:
		return 0, fmt.Errorf("page server %s: %d is not a PID", c.peer, pid)
	case vaddr%pagemap.PageSize != 0:
		return 0, fmt.Errorf("page server %s: %s: the address is not page-aligned", c.peer, what)
	case nrPages == 0 || nrPages > uint64(len(buf))/pagemap.PageSize:
		return 0, fmt.Errorf("page server %s: %s: %d pages asked for, with room for %d", c.peer, what, nrPages, len(buf)/pagemap.PageSize)
	}
	c.lazy = true
	if err := c.send(iov{cmd: cmdGet, nrPages: nrPages, vaddr: vaddr, dstID: uint64(pid)}); err != nil {
		return 0, err
	}
	b, err := c.answer("the request for "+what, iovSize)
	if err != nil {
		return 0, err
	}
	a := parseIOV(b)
	switch {
	case a.cmd != cmdAddF || a.vaddr != vaddr || a.dstID != uint64(pid):
		return 0, c.fail(fmt.Errorf("%s: answered with %s of %d pages at %#x for target %d, not ADD_F for them: not CRIU's page-server protocol",
			what, cmdName(a), a.nrPages, a.vaddr, a.dstID))
	case a.nrPages == 0:
		c.fail(fmt.Errorf("task %d: %w at %#x: the server ended the session: see its log", pid, ErrNoLazyPages, vaddr))
		return 0, c.err
	case a.nrPages > nrPages:
		return 0, c.fail(fmt.Errorf("%s: answered %d pages where %d were asked for", what, a.nrPages, nrPages))
	case a.flags != pagemap.FlagPresent:
		return 0, c.fail(fmt.Errorf("%s: answered with flags %#x, not PE_PRESENT: not CRIU's page-server protocol", what, a.flags))
	}
	n := a.nrPages * pagemap.PageSize
	if _, err := io.ReadFull(c.conn, buf[:n]); err != nil {
		if errors.Is(err, errBadStream) {
			return 0, c.fail(fmt.Errorf("%s: %w", what, err))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, c.fail(fmt.Errorf("%s: closed the connection in the middle of their data: see its log", what))
		}
		return 0, c.lost(err)
	}
	c.Fetched += n
	return a.nrPages, nil
}

// Abort drops the connection: the server discards the session.
func (c *Client) Abort() {
	c.fail(errors.New("session aborted"))
	c.raw.Close()
}

// Stream sends the runs of one target. Runs come in address order through
// Add; the data of present runs follows through Write, in the same order.
// A run is put on the wire when its data starts (or at Close), so runs added
// back to back with the same flags go as one.
type Stream struct {
	c      *Client
	target Target
	queue  []pagemap.Entry // added, not sent yet
	left   uint64          // bytes still owed for the run on the wire
	run    uint64          // length of the run on the wire
	end    uint64          // end of the last run added
}

// Add queues a run.
func (s *Stream) Add(e pagemap.Entry) error {
	if e.NrPages == 0 {
		return nil
	}
	if e.Vaddr < s.end {
		return s.c.fail(fmt.Errorf("%s: run %s starts before the end of the previous one (%#x)", s.target, e, s.end))
	}
	s.end = e.End()
	if n := len(s.queue); n > 0 && s.queue[n-1].End() == e.Vaddr && s.queue[n-1].Flags == e.Flags {
		s.queue[n-1].NrPages += e.NrPages
		return nil
	}
	s.queue = append(s.queue, e)
	return nil
}

func (s *Stream) sendRun(e pagemap.Entry) error {
	return s.c.send(iov{cmd: cmdAddF, flags: e.Flags, nrPages: e.NrPages, vaddr: e.Vaddr, dstID: s.target.dstID()})
}

// Write sends page data of the queued present runs.
func (s *Stream) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		if s.left == 0 {
			// Runs without data go first, then the next present run.
			for len(s.queue) > 0 && s.queue[0].Flags&pagemap.FlagPresent == 0 {
				if err := s.sendRun(s.queue[0]); err != nil {
					return done, err
				}
				s.queue = s.queue[1:]
			}
			if len(s.queue) == 0 {
				return done, s.c.fail(fmt.Errorf("%s: %d bytes of page data beyond the runs added", s.target, len(p)))
			}
			if err := s.sendRun(s.queue[0]); err != nil {
				return done, err
			}
			s.left = s.queue[0].NrPages * pagemap.PageSize
			s.run = s.left
			s.queue = s.queue[1:]
		}
		n := min(uint64(len(p)), s.left)
		if r := s.c.record; r > 0 {
			n = min(n, r-(s.run-s.left)%r)
		}
		if s.c.err != nil {
			return done, s.c.err
		}
		if _, err := s.c.w.Write(p[:n]); err != nil {
			return done, s.c.lost(err)
		}
		s.c.Sent += n
		s.left -= n
		done += int(n)
		p = p[n:]
	}
	return done, nil
}

// Close sends the runs left and ends the target.
func (s *Stream) Close() error {
	if s.c.open != s {
		return nil
	}
	s.c.open = nil
	if s.left > 0 {
		return s.c.fail(fmt.Errorf("%s: %d bytes of page data missing", s.target, s.left))
	}
	for _, e := range s.queue {
		if e.Flags&pagemap.FlagPresent != 0 {
			return s.c.fail(fmt.Errorf("%s: run %s added but its data never written", s.target, e))
		}
		if err := s.sendRun(e); err != nil {
			return err
		}
	}
	s.queue = nil
	return s.c.err
}
