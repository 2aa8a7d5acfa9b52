package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxLineLen bounds one config line; nothing sensible comes near it.
const maxLineLen = 64 << 10

// Entry is one option line of a config file.
type Entry struct {
	Line     int    // 1-based line number
	Name     string // long flag name, without dashes
	Value    string // unquoted value; empty when HasValue is false
	HasValue bool   // a value was written, possibly an empty quoted one
}

// FileError is a problem in a config file, reported as "file:line: problem".
type FileError struct {
	File string
	Line int // 0 when the problem concerns the whole file
	Msg  string
}

func (e *FileError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseFile splits a config file into entries. name is used in errors only.
// It checks syntax, not option names: that needs the command's flags.
func ParseFile(r io.Reader, name string) ([]Entry, error) {
	var entries []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	n := 0
	for sc.Scan() {
		n++
		e, ok, err := ParseLine(sc.Text())
		if err != nil {
			return nil, &FileError{File: name, Line: n, Msg: err.Error()}
		}
		if ok {
			e.Line = n
			entries = append(entries, e)
		}
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, &FileError{File: name, Line: n + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLineLen)}
		}
		return nil, &FileError{File: name, Msg: err.Error()}
	}
	return entries, nil
}

// ParseLine parses one config line. ok is false for blank and comment lines.
// Forms: "name", "name value", "name=value"; the value is one word, which may
// be or contain "double quoted" (with backslash escapes) or 'single quoted'
// parts; "#" after whitespace starts a comment.
func ParseLine(line string) (e Entry, ok bool, err error) {
	s := strings.TrimLeft(line, " \t\r\f\v")
	if s == "" || s[0] == '#' {
		return Entry{}, false, nil
	}
	i := 0
	for i < len(s) && !isSpace(s[i]) && s[i] != '=' && s[i] != '"' && s[i] != '\'' {
		i++
	}
	e.Name = s[:i]
	if e.Name == "" {
		return Entry{}, false, fmt.Errorf("line starts with %q instead of an option name", s[:1])
	}
	if i < len(s) && (s[i] == '"' || s[i] == '\'') {
		return Entry{}, false, fmt.Errorf("option name %q is followed by a quote; put a space or \"=\" between the name and its value", e.Name)
	}
	// Command-line habit; the name is the same without them.
	e.Name = strings.TrimPrefix(e.Name, "--")
	if !validName(e.Name) {
		return Entry{}, false, fmt.Errorf("%q is not an option name; write the long flag name without dashes, e.g. \"images-dir /tmp/x\"", e.Name)
	}
	s = s[i:]
	s = skipSpace(s)
	sawEquals := false
	if s != "" && s[0] == '=' {
		sawEquals = true
		s = skipSpace(s[1:])
	}
	if s == "" || s[0] == '#' {
		if sawEquals {
			return Entry{}, false, fmt.Errorf("option %q has \"=\" but no value; write a value after it, or \"\" for an empty one", e.Name)
		}
		return e, true, nil
	}
	val, rest, err := parseWord(s)
	if err != nil {
		return Entry{}, false, err
	}
	rest = skipSpace(rest)
	if rest != "" && rest[0] != '#' {
		return Entry{}, false, fmt.Errorf("option %q has more than one value (%q follows %q); quote a value that contains spaces", e.Name, rest, val)
	}
	e.Value, e.HasValue = val, true
	return e, true, nil
}

// parseWord reads one shell-like word from s, which starts with a non-space,
// and returns it unquoted along with what follows it.
func parseWord(s string) (word, rest string, err error) {
	var b []byte // only allocated once quoting makes the word differ from s
	i := 0
	for i < len(s) && !isSpace(s[i]) {
		switch c := s[i]; c {
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return "", "", fmt.Errorf("unterminated single quote in %q; add the closing '", s)
			}
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[:i]...)
			}
			b = append(b, s[i+1:i+1+end]...)
			i += end + 2
		case '"':
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[:i]...)
			}
			var n int
			b, n, err = appendDoubleQuoted(b, s[i:])
			if err != nil {
				return "", "", err
			}
			i += n
		default:
			if b != nil {
				b = append(b, c)
			}
			i++
		}
	}
	if b == nil {
		return s[:i], s[i:], nil
	}
	return string(b), s[i:], nil
}

// appendDoubleQuoted appends the content of the double-quoted string at the
// start of s to b and reports how many bytes of s it used.
func appendDoubleQuoted(b []byte, s string) ([]byte, int, error) {
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b, i + 1, nil
		case '\\':
			if i+1 >= len(s) {
				return nil, 0, fmt.Errorf("unterminated double quote in %q; add the closing \"", s)
			}
			i++
			switch e := s[i]; e {
			case '\\', '"', '\'', '#', '$', '`':
				b = append(b, e)
			case 'n':
				b = append(b, '\n')
			case 't':
				b = append(b, '\t')
			case 'r':
				b = append(b, '\r')
			default:
				return nil, 0, fmt.Errorf("unknown escape \\%c in double quotes; write \\\\ for a backslash", e)
			}
		default:
			b = append(b, c)
		}
	}
	return nil, 0, fmt.Errorf("unterminated double quote in %q; add the closing \"", s)
}

// validName accepts what pflag flag names are made of in practice.
func validName(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'
}

func skipSpace(s string) string {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return s[i:]
}
