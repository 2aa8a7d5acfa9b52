// Package proc parses the files under /proc that tell dump about a task from
// outside: maps and smaps, status, stat, fdinfo, children, mountinfo, timers
// and auxv.
//
// Each file has a pure parser that takes the file's content (an io.Reader, or
// []byte where the file is small and not line-oriented) and a thin Read
// helper that opens /proc/PID/.... Parsers never panic on malformed input;
// they return a *ParseError naming the file and line. Parsers are not tied to
// any goroutine or thread and hold no state between calls.
//
// Parsers take what the kernel prints at face value; where the text is
// ambiguous (a file really named "x (deleted)", a "\012" in a maps path),
// callers that need certainty confirm through /proc/PID/map_files or fstat.
package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// Root is where procfs is mounted. Tests of the Read helpers may point it at
// a copy of a /proc tree.
var Root = "/proc"

// maxLineLen bounds one line of a /proc file. The longest real ones are
// mountinfo lines of overlay mounts with many lower directories.
const maxLineLen = 1 << 20

// ParseError is malformed content in a /proc file.
type ParseError struct {
	File string // "maps" from a parser, "/proc/PID/maps" from a Read helper
	Line int    // 1-based; 0 when the problem is not on one line
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func parseErrorf(file string, line int, format string, args ...any) *ParseError {
	return &ParseError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// Path returns the path of a file of task pid, e.g. Path(1, "task", "1", "stat").
func Path(pid int, elem ...string) string {
	return filepath.Join(append([]string{Root, strconv.Itoa(pid)}, elem...)...)
}

// renameError puts the real path into a parser's error.
func renameError(err error, path string) error {
	var pe *ParseError
	if errors.As(err, &pe) {
		pe.File = path
	}
	return err
}

// readFile reads a whole /proc file; their sizes are not known in advance.
func readFile(path string) ([]byte, error) {
	return os.ReadFile(path)
}

// parseFile opens path and runs parse on it, naming path in errors.
func parseFile[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	return v, renameError(err, path)
}

// lineScanner walks the lines of a /proc file. Unlike bufio.ScanLines it
// keeps a trailing '\r', which can be part of a file name.
type lineScanner struct {
	sc   *bufio.Scanner
	file string
	n    int
}

func newLineScanner(r io.Reader, file string) *lineScanner {
	sc := bufio.NewScanner(r)
	size := 4096
	if br, ok := r.(*bytes.Reader); ok {
		// Already in memory: a buffer of its size will do.
		size = min(size, br.Len()+1)
	}
	sc.Buffer(make([]byte, 0, size), maxLineLen)
	sc.Split(splitLF)
	return &lineScanner{sc: sc, file: file}
}

func splitLF(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Scan advances to the next line, which Bytes then returns.
func (s *lineScanner) Scan() bool {
	if s.sc.Scan() {
		s.n++
		return true
	}
	return false
}

func (s *lineScanner) Bytes() []byte { return s.sc.Bytes() }

// Err reports a read error or an over-long line, naming the file.
func (s *lineScanner) Err() error {
	err := s.sc.Err()
	if err == nil {
		return nil
	}
	if errors.Is(err, bufio.ErrTooLong) {
		return parseErrorf(s.file, s.n+1, "line longer than %d bytes", maxLineLen)
	}
	return fmt.Errorf("%s: %w", s.file, err)
}

// errorf makes a ParseError for the current line.
func (s *lineScanner) errorf(format string, args ...any) *ParseError {
	return parseErrorf(s.file, s.n, format, args...)
}

// parseUint parses b in base without allocating; bitSize bounds the value.
func parseUint(b []byte, base int, bitSize int) (uint64, bool) {
	if len(b) == 0 || len(b) > 64 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= uint64(base) {
			return 0, false
		}
		hi := v * uint64(base)
		if hi/uint64(base) != v || hi+d < hi {
			return 0, false
		}
		v = hi + d
	}
	if bitSize < 64 && v >= 1<<uint(bitSize) {
		return 0, false
	}
	return v, true
}

// parseInt parses a signed decimal that fits in an int.
func parseInt(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := parseUint(b, 10, 63)
	if !ok {
		return 0, false
	}
	if neg {
		return -int(u), true
	}
	return int(u), true
}

// cutByte splits b at the first c.
func cutByte(b []byte, c byte) (before, after []byte, found bool) {
	if i := bytes.IndexByte(b, c); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// trimSpace trims spaces and tabs, the only padding /proc files use.
func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t")
}

func itoa(n int) string { return strconv.Itoa(n) }
