package proc

import (
	"io"
	"strings"
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
