package proc

import (
	"bytes"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Fdinfo is /proc/PID/fdinfo/FD: the lines every file has, plus the
// kind-specific ones.
type Fdinfo struct {
	Pos     uint64
	Flags   uint32 // open(2) flags, printed in octal
	MntID   int    // Linux 3.15+; -1 when absent
	Ino     uint64 // Linux 5.14+; HasIno says whether it was there
	HasIno  bool
	Fields  map[string]string // other "key: value" lines, value trimmed, first of each key
	Entries []string          // lines a file can have many of, raw: epoll "tfd:", "inotify wd:", "fanotify ...", "lock:"
}

// repeatedFdinfoKeys start lines that repeat, one per watched object; they
// carry several "k:v" pairs each, so they are kept whole.
var repeatedFdinfoKeys = []string{"tfd", "inotify wd", "fanotify ino", "fanotify mnt_id", "fanotify mnt", "lock"}

// ParseFdinfo parses /proc/PID/fdinfo/FD.
func ParseFdinfo(r io.Reader) (*Fdinfo, error) {
	fi := &Fdinfo{MntID: -1}
	var hasPos, hasFlags bool
	sc := newLineScanner(r, "fdinfo")
	for sc.Scan() {
		line := sc.Bytes()
		key, val, ok := cutByte(line, ':')
		if !ok {
			return nil, sc.errorf("line %q has no ':'", line)
		}
		val = trimSpace(val)
		switch string(key) {
		case "pos":
			if fi.Pos, ok = parseUint(val, 10, 64); !ok {
				return nil, sc.errorf("bad pos %q", val)
			}
			hasPos = true
			continue
		case "flags":
			f, ok := parseUint(val, 8, 32)
			if !ok {
				return nil, sc.errorf("bad flags %q, want octal", val)
			}
			fi.Flags, hasFlags = uint32(f), true
			continue
		case "mnt_id":
			if fi.MntID, ok = parseInt(val); !ok {
				return nil, sc.errorf("bad mnt_id %q", val)
			}
			continue
		case "ino":
			if fi.Ino, ok = parseUint(val, 10, 64); !ok {
				return nil, sc.errorf("bad ino %q", val)
			}
			fi.HasIno = true
			continue
		}
		k := string(key)
		if isRepeatedFdinfoKey(k) {
			fi.Entries = append(fi.Entries, string(line))
			continue
		}
		if fi.Fields == nil {
			fi.Fields = map[string]string{}
		}
		if _, dup := fi.Fields[k]; !dup {
			fi.Fields[k] = string(val)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !hasPos || !hasFlags {
		return nil, parseErrorf("fdinfo", 0, "no pos or flags line")
	}
	return fi, nil
}

func isRepeatedFdinfoKey(k string) bool {
	for _, r := range repeatedFdinfoKeys {
		if k == r {
			return true
		}
	}
	// "fanotify flags:" is once per file; other "fanotify ..." lines are marks.
	return strings.HasPrefix(k, "fanotify ") && k != "fanotify flags"
}

// ReadFdinfo reads /proc/PID/fdinfo/FD.
func ReadFdinfo(pid, fd int) (*Fdinfo, error) {
	return parseFile(Path(pid, "fdinfo", itoa(fd)), ParseFdinfo)
}

// ReadFdinfoAt reads fdinfo of fd of task pid through dir, an open
// /proc/PID/fdinfo directory: a task's many fds cost no walk of /proc each.
func ReadFdinfoAt(dir, pid, fd int) (*Fdinfo, error) {
	name := itoa(fd)
	path := Path(pid, "fdinfo", name)
	n, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	b, err := readAll(n)
	unix.Close(n)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	fi, err := ParseFdinfo(bytes.NewReader(b))
	return fi, renameError(err, path)
}

// readAll reads fd to its end with read(2) alone: no os.File around it.
func readAll(fd int) ([]byte, error) {
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
