package images

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"
)

// Limits on sizes read from files, so that a damaged file cannot make a
// reader allocate gigabytes. A CRIU entry is small (an mm_entry with the
// kernel's maximum of 65530 VMAs stays under 4 MiB); payloads are pipe or
// socket buffers and ghost files, which CRIU itself caps well below these.
const (
	MaxEntrySize = 64 << 20
	MaxExtraSize = 1 << 30
)

// FormatError reports damaged or unexpected image content.
type FormatError struct {
	File   string
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: at byte %d: %s", e.File, e.Offset, e.Msg)
}

// Entry is one entry of an image file.
type Entry struct {
	Offset int64         // where the entry's size field starts
	Raw    []byte        // the encoded message, exactly as in the file
	Msg    proto.Message // Raw parsed; nil when the kind has no schema
	Extra  []byte        // raw bytes that followed the entry; nil when it has no payload slot
}

// Reader reads the entries of one image file in order.
type Reader struct {
	name  string
	br    *bufio.Reader
	c     io.Closer
	off   int64
	kind  *Kind
	index int
	first proto.Message // entry 0's message, which decides some payloads
	done  bool
}

// rawPrefixes name the magic-less files CRIU writes.
var rawPrefixes = []string{"ifaddr-", "route-", "route6-", "rule-", "tmpfs-", "iptables-",
	"ip6tables-", "nftables-", "netns-ct-", "netns-exp-"}

// RawKindForName returns the kind of a magic-less file by its name, or nil
// when name is not one of those.
func RawKindForName(name string) *Kind {
	base := filepath.Base(name)
	if strings.HasPrefix(base, "pages-") && strings.HasSuffix(base, ".img") {
		return KindPages
	}
	for _, p := range rawPrefixes {
		if strings.HasPrefix(base, p) {
			return kindByNameMust("RAW")
		}
	}
	return nil
}

// readBufSize is the read buffer for r: 64 KiB, or the size of a smaller
// file (a restore reads thousands of small images; a 64 KiB buffer each
// was most of the work).
func readBufSize(r io.Reader) int {
	const most = 64 << 10
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() < most {
			return max(int(fi.Size()), 16) // bufio's own minimum
		}
	}
	return most
}

// NewReader starts reading an image from r. name is used in errors and to
// recognize magic-less files (pages-N.img). The magic is read and checked.
// If r is an io.Closer, Close closes it.
func NewReader(r io.Reader, name string) (*Reader, error) {
	rd := &Reader{name: name, br: bufio.NewReaderSize(r, readBufSize(r))}
	if c, ok := r.(io.Closer); ok {
		rd.c = c
	}
	if k := RawKindForName(name); k != nil {
		rd.kind = k
		return rd, nil
	}
	m, err := rd.u32("magic")
	if err == io.EOF {
		return nil, rd.errf(0, "empty file: not an image")
	}
	if err != nil {
		return nil, err
	}
	layout := LayoutSingle
	switch m {
	case CommonMagic, ServiceMagic:
		if m == CommonMagic {
			layout = LayoutCommon
		} else {
			layout = LayoutService
		}
		if m, err = rd.u32("image magic"); err != nil {
			return nil, err
		}
	}
	k, ok := KindByMagic(m)
	if !ok {
		return nil, rd.errf(rd.off-4, "unknown image magic %#08x: not a CRIU image, or one newer than gockpt knows", m)
	}
	if k.Layout != layout {
		return nil, rd.errf(0, "%s image with a %s header; CRIU writes it with a %s header", k.Name, layoutName(layout), layoutName(k.Layout))
	}
	rd.kind = k
	return rd, nil
}

func layoutName(l Layout) string {
	switch l {
	case LayoutCommon:
		return "common-magic"
	case LayoutService:
		return "service-magic"
	case LayoutSingle:
		return "single-magic"
	}
	return "raw"
}

// Kind returns the kind of the image, known once the magic is read.
func (r *Reader) Kind() *Kind { return r.kind }

// Name returns the name the reader reports in errors.
func (r *Reader) Name() string { return r.name }

// Offset returns how many bytes were consumed so far.
func (r *Reader) Offset() int64 { return r.off }

// Close closes the underlying file, if the reader owns one.
func (r *Reader) Close() error {
	if r.c == nil {
		return nil
	}
	c := r.c
	r.c = nil
	return c.Close()
}

func (r *Reader) errf(off int64, format string, args ...any) error {
	return &FormatError{File: r.name, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func (r *Reader) u32(what string) (uint32, error) {
	var b [4]byte
	n, err := io.ReadFull(r.br, b[:])
	r.off += int64(n)
	if err != nil {
		if n == 0 && err == io.EOF {
			return 0, io.EOF
		}
		return 0, r.errf(r.off-int64(n), "truncated %s: %d of 4 bytes", what, n)
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// readN reads exactly n bytes, growing the buffer as data arrives so that a
// bogus size in a short file costs no more memory than the file holds.
// readNth is readN of a numbered part (what holds one %d for index): the
// name is made only for an error.
func (r *Reader) readNth(n uint64, what string, index int) ([]byte, error) {
	if n > 1<<20 {
		return r.readN(n, fmt.Sprintf(what, index))
	}
	start := r.off
	buf := make([]byte, n)
	got, err := io.ReadFull(r.br, buf)
	r.off += int64(got)
	if err == nil {
		return buf, nil
	}
	name := fmt.Sprintf(what, index)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, r.errf(start, "truncated %s: want %d bytes, file ends after %d", name, n, got)
	}
	return nil, fmt.Errorf("%s: reading %s at byte %d: %w", r.name, name, start, err)
}

func (r *Reader) readN(n uint64, what string) ([]byte, error) {
	const chunk = 1 << 20
	start := r.off
	buf := make([]byte, 0, min(n, chunk)) // non-nil even when n == 0
	for uint64(len(buf)) < n {
		want := min(n-uint64(len(buf)), chunk)
		buf = append(buf, make([]byte, want)...)
		got, err := io.ReadFull(r.br, buf[uint64(len(buf))-want:])
		r.off += int64(got)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, r.errf(start, "truncated %s: want %d bytes, file ends after %d", what, n, uint64(len(buf))-want+uint64(got))
			}
			return nil, fmt.Errorf("%s: reading %s at byte %d: %w", r.name, what, start, err)
		}
	}
	return buf, nil
}

// ReadAll reads the rest of the input (raw images, opaque bodies), up to
// MaxExtraSize bytes.
func (r *Reader) ReadAll() ([]byte, error) {
	start := r.off
	b, err := io.ReadAll(io.LimitReader(r.br, MaxExtraSize+1))
	r.off += int64(len(b))
	if err != nil {
		return nil, fmt.Errorf("%s: reading at byte %d: %w", r.name, r.off, err)
	}
	if len(b) > MaxExtraSize {
		return nil, r.errf(start, "more than %d bytes of data; refusing to load it into memory", MaxExtraSize)
	}
	r.done = true
	return b, nil
}

// Next returns the next entry, or io.EOF after the last one. The entry's
// message is parsed when the kind has a schema; unknown fields are kept.
func (r *Reader) Next() (*Entry, error) { return r.next(nil) }

// next reads the next entry; into, if of the entry's type, is what it is
// decoded into (ReadEntry's message: no copy afterwards).
func (r *Reader) next(into proto.Message) (*Entry, error) {
	if r.done {
		return nil, io.EOF
	}
	if r.kind.Layout == LayoutRaw || r.kind.Opaque {
		return nil, fmt.Errorf("%s: %s images hold no entries; read them with ReadAll", r.name, r.kind.Name)
	}
	e := &Entry{Offset: r.off}
	size, err := r.u32("entry size")
	if err == io.EOF {
		r.done = true
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	if size > MaxEntrySize {
		return nil, r.errf(e.Offset, "entry %d claims %d bytes, more than the %d-byte limit: the file is damaged", r.index, size, MaxEntrySize)
	}
	if e.Raw, err = r.readNth(uint64(size), "entry %d", r.index); err != nil {
		return nil, err
	}
	m := into
	if into == nil || !r.kind.isEntryMessage(r.index, into) {
		m = r.kind.entryMessage(r.index)
	}
	if m != nil {
		if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(e.Raw, m); err != nil {
			return nil, r.errf(e.Offset+4, "entry %d is not a valid %s: %v", r.index, m.ProtoReflect().Descriptor().Name(), err)
		}
		e.Msg = m
	}
	if r.index == 0 {
		r.first = e.Msg
	}
	if r.kind.extra != nil && e.Msg != nil {
		n, rest := r.kind.extra(r.index, r.first, e.Msg)
		switch {
		case rest:
			if e.Extra, err = r.ReadAll(); err != nil {
				return nil, err
			}
		case n > MaxExtraSize:
			return nil, r.errf(e.Offset, "entry %d says %d bytes of data follow, more than the %d-byte limit: the file is damaged", r.index, n, MaxExtraSize)
		case n >= 0:
			if e.Extra, err = r.readNth(uint64(n), "data of entry %d", r.index); err != nil {
				return nil, err
			}
		}
	}
	r.index++
	return e, nil
}

// ReadEntry reads the next entry into m, which must be the kind's message
// type. It returns io.EOF after the last entry, and the entry's payload.
func (r *Reader) ReadEntry(m proto.Message) (extra []byte, err error) {
	e, err := r.next(m)
	if err != nil {
		return nil, err
	}
	if e.Msg == nil {
		return nil, fmt.Errorf("%s: gockpt has no schema for %s images", r.name, r.kind.Name)
	}
	if e.Msg.ProtoReflect().Descriptor() != m.ProtoReflect().Descriptor() {
		return nil, fmt.Errorf("%s: entry %d is a %s, not a %s", r.name, r.index-1,
			e.Msg.ProtoReflect().Descriptor().Name(), m.ProtoReflect().Descriptor().Name())
	}
	return e.Extra, nil
}

// ReadOne reads an image that must hold exactly one entry into m.
func (r *Reader) ReadOne(m proto.Message) error {
	if _, err := r.ReadEntry(m); err != nil {
		if err == io.EOF {
			return r.errf(r.off, "no entry, want one %s", m.ProtoReflect().Descriptor().Name())
		}
		return err
	}
	if _, err := r.Next(); err != io.EOF {
		if err == nil {
			return r.errf(r.off, "more than one entry, want only one %s", m.ProtoReflect().Descriptor().Name())
		}
		return err
	}
	return nil
}

// Writer writes one image file.
type Writer struct {
	name string
	bw   *bufio.Writer
	c    io.Closer
	off  int64
	kind *Kind
	err  error // first write error; later writes return it
}

// NewWriter starts an image of kind k on w, writing its magic. name is used
// in errors. If w is an io.Closer, Close closes it.
func NewWriter(w io.Writer, name string, k *Kind) (*Writer, error) {
	size := 64 << 10
	if _, ok := w.(*smallWriter); ok {
		size = 256 // memory already: the buffer only gathers small writes
	}
	wr := &Writer{name: name, bw: bufio.NewWriterSize(w, size), kind: k}
	if c, ok := w.(io.Closer); ok {
		wr.c = c
	}
	switch k.Layout {
	case LayoutCommon:
		wr.u32(CommonMagic)
		wr.u32(k.Magic)
	case LayoutService:
		wr.u32(ServiceMagic)
		wr.u32(k.Magic)
	case LayoutSingle:
		wr.u32(k.Magic)
	}
	return wr, wr.err
}

// Kind returns the kind being written.
func (w *Writer) Kind() *Kind { return w.kind }

// Offset returns how many bytes were written so far.
func (w *Writer) Offset() int64 { return w.off }

func (w *Writer) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	w.Write(b[:])
}

// Write appends raw bytes: the payload after an entry, or the data of a raw
// image.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.bw.Write(p)
	w.off += int64(n)
	if err != nil {
		w.err = fmt.Errorf("%s: writing at byte %d: %w", w.name, w.off, err)
	}
	return n, w.err
}

// WriteEntry appends m as an entry. Fields are written in field-number
// order, as CRIU does, so the bytes are stable.
func (w *Writer) WriteEntry(m proto.Message) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("%s: encoding entry at byte %d: %w", w.name, w.off, err)
	}
	return w.WriteRawEntry(b)
}

// WriteRawEntry appends an already encoded message as an entry.
func (w *Writer) WriteRawEntry(b []byte) error {
	if w.kind.Layout == LayoutRaw {
		return fmt.Errorf("%s: %s images hold no entries", w.name, w.kind.Name)
	}
	if len(b) > MaxEntrySize {
		return fmt.Errorf("%s: entry at byte %d is %d bytes, more than readers accept (%d)", w.name, w.off, len(b), MaxEntrySize)
	}
	w.u32(uint32(len(b)))
	_, err := w.Write(b)
	return err
}

// Flush writes buffered data to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("%s: %w", w.name, err)
	}
	return w.err
}

// Close flushes and closes the underlying file, if the writer owns one.
// Only a nil error from Close means the image is complete.
func (w *Writer) Close() error {
	err := w.Flush()
	if w.c != nil {
		if cerr := w.c.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: %w", w.name, cerr)
		}
		w.c = nil
	}
	return err
}
