package pageserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/klauspost/compress/zstd"
)

// The compression extension (gockpt to gockpt only; the package comment
// describes it on the wire).

// cmdCompress is COMPRESS: "the rest of the directions named is
// compressed". Its number is far from CRIU's (1-7, 0x1023, 0x1024): no
// CRIU version gives it a meaning, so a CRIU server answers it as it
// answers any unknown command, by ending the session.
const cmdCompress = 0x6763

// compressMagic is COMPRESS's dst_id, "GOCKPTZ" in ASCII: a command that
// merely has COMPRESS's number is not COMPRESS.
const compressMagic = 0x5a54504b434f47

// algZstd is the one algorithm: zstd, one frame per direction.
const algZstd = 1

// Direction names a direction of a session, for Client.Compress.
type Direction uint64

const (
	// CompressSent compresses what the client sends: its commands and
	// the pages of a dump.
	CompressSent Direction = 1
	// CompressAnswers compresses what the server sends: its answers, the
	// pages of a lazy session's GETs.
	CompressAnswers Direction = 2

	allDirections = CompressSent | CompressAnswers
)

// COMPRESS's answer: one byte, uncompressed.
const (
	compressOK         = 0 // the directions asked for are compressed after this byte
	compressUnknownAlg = 1 // refused, the session ends
	compressBadDirs    = 2 // refused, the session ends
	compressNotFirst   = 3 // refused, the session ends
)

func (d Direction) String() string {
	switch d {
	case 0:
		return "nothing"
	case CompressSent:
		return "what the client sends"
	case CompressAnswers:
		return "the server's answers"
	case allDirections:
		return "both directions"
	}
	return fmt.Sprintf("directions %#x", uint64(d))
}

// Limits of the decoder: the window (the history it keeps) bounds its
// memory whatever the peer sends, a decompression bomb included; the
// encoder uses half of it.
const (
	encoderWindow = 4 << 20
	maxWindow     = 8 << 20
)

func newEncoder(w io.Writer) *zstd.Encoder {
	// Fastest: the stream must outrun the link. No checksum: the frame
	// ends only with the session, after the answer that counts (TCP and
	// TLS check the bytes). Synchronous: each block is compressed in the
	// writer's goroutine, which measured faster than handing blocks to
	// goroutines (616 against 488 MB/s on 2 cores), and nothing writes to
	// the connection behind the caller's back.
	e, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(encoderWindow),
		zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // fixed options
	}
	return e
}

// zreader decompresses what a peer sends: one zstd frame, decoded block
// by block as it comes (a block flushed before an answer is read whole
// without waiting for more). Errors of the connection come out as they
// are (io.EOF where the peer hung up); anything wrong with the stream
// itself says so.
type zreader struct {
	src *zsource
	dec *zstd.Decoder
	err error
}

func newZReader(r io.Reader) *zreader {
	// Buffered: the decoder reads each block's 3-byte header, then the
	// block, and a read from the connection for each would cost a wakeup
	// a block. Everything on r is the compressed stream, so reading ahead
	// takes nothing that is not the decoder's.
	src := &zsource{r: bufio.NewReaderSize(r, 128<<10)}
	// Synchronous: nothing is read ahead of what is asked for.
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow),
		zstd.WithDecoderMaxMemory(maxWindow), zstd.WithDecoderLowmem(true))
	if err != nil {
		panic(err) // fixed options
	}
	return &zreader{src: src, dec: dec}
}

// errBadStream marks a compressed stream that cannot be decoded.
var errBadStream = errors.New("bad compressed stream")

func (z *zreader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.dec.Read(p)
	if err != nil {
		switch {
		case z.src.connErr != nil:
			err = z.src.connErr
		case z.src.badErr != nil:
			err = fmt.Errorf("%w: %w", errBadStream, z.src.badErr)
		default:
			err = fmt.Errorf("%w: %w", errBadStream, err)
		}
		z.err = err
	}
	return n, err
}

// zsource passes the compressed bytes to the decoder, keeping the
// connection's error apart and checking the framing as the bytes go by:
// one zstd frame, no skippable frame (the decoder would report each on
// stderr) and nothing after the frame's end. It looks at block headers
// only; the decoder checks what is inside.
type zsource struct {
	r       io.Reader
	connErr error
	badErr  error

	state    int
	hdr      [18]byte // a frame header: 4 magic + 1 + 1 + 4 + 8, at most
	have     int      // bytes of hdr (or of a block header) collected
	need     int
	left     uint64 // bytes of the block's content, or of the checksum, to pass
	last     bool
	checksum bool
}

const (
	zFrameHeader = iota
	zBlockHeader
	zBlockContent
	zChecksum
	zEnded
)

var zstdMagic = [4]byte{0x28, 0xb5, 0x2f, 0xfd}

func (s *zsource) Read(p []byte) (int, error) {
	if s.badErr != nil {
		return 0, s.badErr
	}
	n, err := s.r.Read(p)
	if err != nil {
		s.connErr = err
	}
	if berr := s.scan(p[:n]); berr != nil {
		s.badErr = berr
		return 0, berr
	}
	return n, err
}

// scan follows the framing through b.
func (s *zsource) scan(b []byte) error {
	for len(b) > 0 {
		switch s.state {
		case zFrameHeader:
			if s.need == 0 {
				s.need = 4
			}
			k := copy(s.hdr[s.have:s.need], b)
			s.have += k
			b = b[k:]
			if s.have < s.need {
				continue
			}
			if s.need == 4 {
				if [4]byte(s.hdr[:4]) != zstdMagic {
					return fmt.Errorf("the stream does not start with a zstd frame (it starts with %x)", s.hdr[:4])
				}
				s.need = 5
				continue
			}
			if s.need == 5 {
				fhd := s.hdr[4]
				s.checksum = fhd&(1<<2) != 0
				single := fhd&(1<<5) != 0
				fcs := [4]int{0, 2, 4, 8}[fhd>>6]
				if fcs == 0 && single {
					fcs = 1
				}
				s.need = 5 + [4]int{0, 1, 2, 4}[fhd&3] + fcs
				if !single {
					s.need++
				}
				if s.have < s.need {
					continue
				}
			}
			s.state, s.have, s.need = zBlockHeader, 0, 0
		case zBlockHeader:
			k := copy(s.hdr[s.have:3], b)
			s.have += k
			b = b[k:]
			if s.have < 3 {
				continue
			}
			h := uint32(s.hdr[0]) | uint32(s.hdr[1])<<8 | uint32(s.hdr[2])<<16
			s.last = h&1 != 0
			s.left = uint64(h >> 3)
			if (h>>1)&3 == 1 { // RLE: one byte, repeated
				s.left = 1
			}
			s.state, s.have = zBlockContent, 0
			if s.left == 0 {
				s.endBlock()
			}
		case zBlockContent, zChecksum:
			k := min(s.left, uint64(len(b)))
			s.left -= k
			b = b[k:]
			if s.left > 0 {
				continue
			}
			if s.state == zChecksum {
				s.state = zEnded
			} else {
				s.endBlock()
			}
		case zEnded:
			return errors.New("data after the end of the zstd frame")
		}
	}
	return nil
}

func (s *zsource) endBlock() {
	switch {
	case !s.last:
		s.state = zBlockHeader
	case s.checksum:
		s.state, s.left = zChecksum, 4
	default:
		s.state = zEnded
	}
}

// hungUp tells whether err means the peer closed the connection.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// compressCmd is the client's COMPRESS.
func compressCmd(alg uint64, dirs Direction) iov {
	return iov{cmd: cmdCompress, nrPages: alg, vaddr: uint64(dirs), dstID: compressMagic}
}

// isCompress tells a COMPRESS from a command that only has its number.
func isCompress(v iov) bool {
	return v.cmd == cmdCompress && v.flags == 0 && v.dstID == compressMagic
}

// serverCompress is a server's side of COMPRESS: it checks the request,
// answers it on w (pushed by flush) and returns the session's reader and
// its encoder of answers (nil: answers stay plain). first: COMPRESS is the
// session's first command. A refusal is answered, then returned as the
// error that ends the session.
func serverCompress(v iov, first bool, r io.Reader, w io.Writer, flush func() error) (io.Reader, *zstd.Encoder, error) {
	dirs := Direction(v.vaddr)
	code, why := byte(compressOK), error(nil)
	switch {
	case !first:
		code, why = compressNotFirst, errors.New("the peer asked for compression after other commands: refused (COMPRESS comes first)")
	case v.nrPages != algZstd:
		code, why = compressUnknownAlg, fmt.Errorf("the peer asked for compression algorithm %d, which this gockpt does not know (it knows zstd, 1): refused", v.nrPages)
	case dirs == 0 || dirs&^allDirections != 0:
		code, why = compressBadDirs, fmt.Errorf("the peer asked to compress directions %#x (1: what it sends, 2: the answers): refused", v.vaddr)
	}
	if _, err := w.Write([]byte{code}); err != nil {
		return nil, nil, fmt.Errorf("answering COMPRESS: %w", err)
	}
	if err := flush(); err != nil {
		return nil, nil, fmt.Errorf("answering COMPRESS: %w", err)
	}
	if why != nil {
		return nil, nil, why
	}
	var enc *zstd.Encoder
	if dirs&CompressSent != 0 {
		r = newZReader(r)
	}
	if dirs&CompressAnswers != 0 {
		enc = newEncoder(w)
	}
	return r, enc, nil
}

// Compress asks the server to compress dirs of the session from now on,
// with zstd: the pages a dump sends (CompressSent), the pages a lazy
// session's GETs bring (CompressAnswers). It is gockpt's extension of
// the protocol and must be the session's first command. A server that
// does not take it (CRIU's, an older gockpt's) ends the session.
func (c *Client) Compress(dirs Direction) error {
	return c.compress(algZstd, dirs)
}

func (c *Client) compress(alg uint64, dirs Direction) error {
	if c.err != nil {
		return c.err
	}
	if c.used {
		return fmt.Errorf("page server %s: compression is asked for first, before any other command", c.peer)
	}
	if err := c.send(compressCmd(alg, dirs)); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return c.lost(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c.conn, b[:]); err != nil {
		if !hungUp(err) {
			return c.lost(err)
		}
		// CRIU's server (and a gockpt's without compression) ends
		// the session at a command it does not know.
		c.err = fmt.Errorf("the page server at %s does not take --compress (a CRIU page server?): drop --compress", c.peer)
		c.raw.Close()
		return c.err
	}
	switch b[0] {
	case compressOK:
	case compressUnknownAlg:
		c.err = fmt.Errorf("the page server at %s does not know compression algorithm %d (a gockpt of another version?): drop --compress", c.peer, alg)
	case compressBadDirs:
		c.err = fmt.Errorf("the page server at %s does not compress %s: drop --compress", c.peer, dirs)
	default:
		c.err = fmt.Errorf("the page server at %s refused compression (answer %d): drop --compress", c.peer, b[0])
	}
	if c.err != nil {
		c.raw.Close()
		return c.err
	}
	if dirs&CompressSent != 0 {
		c.zw = newEncoder(c.w)
		c.w = c.zw
		// The peer is gockpt: no TLS record needs to be whole.
		c.record = 0
	}
	if dirs&CompressAnswers != 0 {
		c.conn = newZReader(c.conn)
	}
	c.compressed = dirs
	return nil
}

// Compressed tells which directions of the session are compressed.
func (c *Client) Compressed() Direction { return c.compressed }
