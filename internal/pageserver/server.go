package pageserver

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/log"
)

// Received is what one session brought.
type Received struct {
	Targets int
	Pages   uint64 // pages with data
	Parent  uint64 // pages left in the parent images
	Lazy    uint64 // pages marked lazy without data
	Bytes   uint64
	// Wire counts the bytes read from the connection: commands and
	// data, compressed when the peer asked for it (Compressed).
	Wire       uint64
	Compressed Direction
	Took       time.Duration
	Files      []string // the images written, sorted as they were made
}

// firstPagesID is where the server numbers its pages images: far above the
// dumper's own (CRIU's up_page_ids_base), so that both may write into one
// directory.
const firstPagesID = 0x10001

// Receive serves one session of a dump sending pages on conn and writes
// them into dir. Nothing reaches dir unless the session ends with CLOSE:
// images are made in a private directory inside dir and moved in only
// then, so a peer that fails, hangs up or sends something unexpected leaves
// dir as it was.
func Receive(conn io.ReadWriter, dir *images.Dir, peer string) (Received, error) {
	begin := time.Now()
	s, err := newSession(conn, dir, peer)
	if err != nil {
		return Received{}, err
	}
	defer s.discard()
	err = s.serve()
	s.got.Took = time.Since(begin)
	if err != nil {
		return s.got, fmt.Errorf("page server: session with %s: %w; nothing from it was written to %s", peer, err, dir.Path())
	}
	return s.got, nil
}

type session struct {
	r       io.Reader // commands and data (decompressed)
	w       io.Writer // answers (compressed by enc)
	enc     *zstd.Encoder
	wire    *countReader
	cmds    int // commands read
	dir     *images.Dir
	peer    string
	staging *images.Dir
	parent  *images.Dir
	nextID  uint32
	seen    map[Target]bool
	cur     *target
	buf     []byte
	got     Received
}

// target is the pagemap being written.
type target struct {
	t      Target
	w      *pagemap.Writer
	parent *pagemap.Reader // opened on the first run left to it
	files  []string
}

func newSession(conn io.ReadWriter, dir *images.Dir, peer string) (*session, error) {
	tmp, err := os.MkdirTemp(dir.Path(), ".page-server-")
	if err != nil {
		return nil, fmt.Errorf("page server: %w", err)
	}
	staging, err := images.OpenDir(tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	parent, err := dir.Parent()
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("page server: %w", err)
	}
	wire := &countReader{r: conn}
	return &session{r: wire, w: conn, wire: wire, dir: dir, peer: peer, staging: staging, parent: parent,
		nextID: firstPagesID, seen: map[Target]bool{}, buf: make([]byte, 1<<20)}, nil
}

// discard removes the private directory and what is left in it.
func (s *session) discard() {
	if s.cur != nil {
		s.cur.w.Close()
		if s.cur.parent != nil {
			s.cur.parent.Close()
		}
		s.cur = nil
	}
	os.RemoveAll(s.staging.Path())
}

func (s *session) serve() error {
	defer func() { s.got.Wire = s.wire.n }()
	var b [iovSize]byte
	for {
		if _, err := io.ReadFull(s.r, b[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the peer hung up before it closed the session (did its dump fail?)")
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
		var err error
		switch v.cmd {
		case cmdOpen, cmdOpen2:
			err = s.open(v)
		case cmdParent:
			err = s.hasParent(v)
		case cmdAdd:
			err = s.add(v, pagemap.FlagPresent)
		case cmdHole:
			err = s.add(v, pagemap.FlagParent)
		case cmdAddF:
			err = s.add(v, v.flags)
		case cmdClose, cmdForceClose:
			return s.close(v.cmd == cmdClose)
		case cmdGet:
			err = errors.New("unexpected command GET (7): this page server receives pages; it serves them only with --lazy-pages")
		default:
			err = fmt.Errorf("unexpected command %#x: not CRIU's page-server protocol", v.cmd|v.flags<<cmdBits)
		}
		if err != nil {
			return err
		}
	}
}

// compress answers COMPRESS: from now on the session reads and answers
// through the decompressor and the compressor asked for.
func (s *session) compress(v iov) error {
	r, enc, err := serverCompress(v, s.cmds == 1, s.r, s.w, func() error { return nil })
	if err != nil {
		return err
	}
	s.r = r
	if enc != nil {
		s.enc, s.w = enc, enc
	}
	s.got.Compressed = Direction(v.vaddr)
	return nil
}

// answer sends an answer: the peer waits for it.
func (s *session) answer(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if s.enc != nil {
		return s.enc.Flush()
	}
	return nil
}

func (s *session) target(v iov) (Target, error) {
	t, err := decodeTarget(v.dstID)
	if err != nil {
		return t, fmt.Errorf("command %d: %w", v.cmd, err)
	}
	return t, nil
}

func (s *session) hasParentImages(t Target) bool {
	return s.parent != nil && s.parent.Exists(t.PagemapFile())
}

func (s *session) hasParent(v iov) error {
	t, err := s.target(v)
	if err != nil {
		return err
	}
	var b [4]byte
	if s.hasParentImages(t) {
		b[0] = 1
	}
	return s.answer(b[:])
}

func (s *session) open(v iov) error {
	t, err := s.target(v)
	if err != nil {
		return err
	}
	if err := s.finish(); err != nil {
		return err
	}
	if s.seen[t] {
		return fmt.Errorf("%s opened twice", t)
	}
	s.seen[t] = true
	for s.dir.Exists(images.PagesFile(s.nextID)) {
		s.nextID++
	}
	id := s.nextID
	s.nextID++
	var w *pagemap.Writer
	if t.Shmem {
		w, err = pagemap.CreateShmem(s.staging, t.ID, id)
	} else {
		w, err = pagemap.Create(s.staging, int(t.ID), id)
	}
	if err != nil {
		return err
	}
	s.cur = &target{t: t, w: w, files: []string{t.PagemapFile(), images.PagesFile(id)}}
	s.got.Targets++
	if v.cmd == cmdOpen2 {
		var b [1]byte
		if s.hasParentImages(t) {
			b[0] = 1
		}
		if err := s.answer(b[:]); err != nil {
			return err
		}
	}
	return nil
}

// add writes one run of the current target.
func (s *session) add(v iov, flags uint32) error {
	t, err := s.target(v)
	if err != nil {
		return err
	}
	if s.cur == nil || s.cur.t != t {
		return fmt.Errorf("pages of %s sent without opening it first", t)
	}
	e, err := checkRun(v, flags)
	if err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	if flags&pagemap.FlagParent != 0 {
		if err := s.inParent(e); err != nil {
			return err
		}
	}
	if err := s.cur.w.AddFrom(e, s.r, s.buf); err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	switch {
	case flags&pagemap.FlagPresent != 0:
		s.got.Pages += e.NrPages
		s.got.Bytes += e.NrPages * pagemap.PageSize
	case flags&pagemap.FlagParent != 0:
		s.got.Parent += e.NrPages
	default:
		s.got.Lazy += e.NrPages
	}
	return nil
}

// inParent checks that the parent images hold a run left to them, as
// restore will need them.
func (s *session) inParent(e pagemap.Entry) error {
	c := s.cur
	if c.parent == nil {
		if !s.hasParentImages(c.t) {
			return fmt.Errorf("%s: pages %#x-%#x are sent as in the parent images, but this page server has none for it: start it with --prev-images-dir naming the previous iteration's images", c.t, e.Vaddr, e.End())
		}
		r, err := pagemap.OpenNamed(s.parent, c.t.PagemapFile())
		if err != nil {
			return err
		}
		c.parent = r
	}
	if err := c.parent.Covers(e.Vaddr, e.End()); err != nil {
		return fmt.Errorf("%s: pages %#x-%#x are sent as in the parent images, but %w", c.t, e.Vaddr, e.End(), err)
	}
	return nil
}

// finish completes the current target's images in the private directory.
func (s *session) finish() error {
	c := s.cur
	if c == nil {
		return nil
	}
	s.cur = nil
	if c.parent != nil {
		c.parent.Close()
	}
	if err := c.w.Close(); err != nil {
		return err
	}
	s.got.Files = append(s.got.Files, c.files...)
	return nil
}

// close ends the session: the images move into the directory, then the
// peer learns the status. A peer that closed the session (rather than
// forcing it closed) hangs up next.
func (s *session) close(wait bool) error {
	err := s.finish()
	if err == nil {
		err = s.commit()
	}
	var b [4]byte
	if err != nil {
		binary.LittleEndian.PutUint32(b[:], uint32(0xffffffff))
	}
	if werr := s.answer(b[:]); werr != nil && err == nil {
		log.Warnf("page server: %s did not take the final status: %v", s.peer, werr)
	}
	if err != nil || !wait {
		return err
	}
	var c [1]byte
	if n, _ := s.r.Read(c[:]); n != 0 {
		log.Warnf("page server: %s sent data after the end of the session", s.peer)
	}
	return nil
}

// commit moves the session's images into the directory.
func (s *session) commit() error {
	for _, name := range s.got.Files {
		if err := os.Rename(s.staging.Join(name), s.dir.Join(name)); err != nil {
			return fmt.Errorf("moving %s into %s: %w", name, s.dir.Path(), err)
		}
	}
	return syncDir(s.dir.Path())
}

func syncDir(path string) error {
	d, err := os.Open(filepath.Clean(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ServeOne accepts one connection on ln (a TLS one when tc is set) and
// receives its session into dir. A peer that fails the TLS handshake (no
// certificate, or one the CA did not sign) is refused before it can send
// anything.
func ServeOne(ln net.Listener, dir *images.Dir, tc *tls.Config) (Received, string, error) {
	conn, rw, peer, err := accept(ln, tc, "refused, nothing was written")
	if err != nil {
		return Received{}, peer, err
	}
	defer conn.Close()
	got, err := Receive(rw, dir, peer)
	return got, peer, err
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n uint64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	return n, err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}
