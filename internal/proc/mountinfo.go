package proc

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo (proc(5)). Strings have the
// kernel's octal escapes (\040 for a space, ...) decoded.
type Mount struct {
	ID           int
	ParentID     int
	Major, Minor uint32
	Root         string   // root of the mount within its filesystem
	MountPoint   string   // relative to the reading process's root
	Options      string   // per-mount options, comma-separated
	Optional     []string // "shared:N", "master:N", "propagate_from:N", "unbindable"
	FSType       string   // "type" or "type.subtype"
	Source       string
	SuperOptions string // per-superblock options, comma-separated
}

// SharedID is the peer group of a shared mount, 0 if not shared.
func (m *Mount) SharedID() int { return m.optionalID("shared:") }

// MasterID is the peer group a slave mount receives from, 0 if none.
func (m *Mount) MasterID() int { return m.optionalID("master:") }

// PropagateFrom is the nearest dominant peer group visible to the reader.
func (m *Mount) PropagateFrom() int { return m.optionalID("propagate_from:") }

// Unbindable reports an unbindable mount.
func (m *Mount) Unbindable() bool {
	for _, o := range m.Optional {
		if o == "unbindable" {
			return true
		}
	}
	return false
}

func (m *Mount) optionalID(prefix string) int {
	for _, o := range m.Optional {
		if s, ok := strings.CutPrefix(o, prefix); ok {
			n, _ := strconv.Atoi(s)
			return n
		}
	}
	return 0
}

// HasOption reports whether opt is among the per-mount options.
func (m *Mount) HasOption(opt string) bool {
	for _, o := range strings.Split(m.Options, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// ParseMountinfo parses /proc/PID/mountinfo.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var mounts []Mount
	sc := newLineScanner(r, "mountinfo")
	for sc.Scan() {
		m, msg := parseMountLine(sc.Bytes())
		if msg != "" {
			return nil, sc.errorf("%s", msg)
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return mounts, nil
}

// ReadMountinfo reads /proc/PID/mountinfo.
func ReadMountinfo(pid int) ([]Mount, error) {
	return parseFile(Path(pid, "mountinfo"), ParseMountinfo)
}

// parseMountLine parses
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue".
// Fields are split on single spaces: an empty source is an empty field.
func parseMountLine(line []byte) (Mount, string) {
	var m Mount
	f := bytes.Split(line, []byte(" "))
	if len(f) < 10 {
		return m, "want at least 10 fields in " + strconv.Quote(clip(line))
	}
	var ok bool
	if m.ID, ok = parseInt(f[0]); !ok {
		return m, "bad mount id " + strconv.Quote(clip(f[0]))
	}
	if m.ParentID, ok = parseInt(f[1]); !ok {
		return m, "bad parent id " + strconv.Quote(clip(f[1]))
	}
	// Unlike maps, mountinfo prints the device in decimal.
	ma, mi, found := cutByte(f[2], ':')
	M, ok1 := parseUint(ma, 10, 32)
	mm, ok2 := parseUint(mi, 10, 32)
	if !found || !ok1 || !ok2 {
		return m, "bad major:minor " + strconv.Quote(clip(f[2]))
	}
	m.Major, m.Minor = uint32(M), uint32(mm)
	m.Root = unescapeOctal(f[3])
	m.MountPoint = unescapeOctal(f[4])
	m.Options = unescapeOctal(f[5])
	sep := -1
	for i := 6; i < len(f); i++ {
		if len(f[i]) == 1 && f[i][0] == '-' {
			sep = i
			break
		}
		m.Optional = append(m.Optional, string(f[i]))
	}
	if sep < 0 || len(f)-sep-1 != 3 {
		return Mount{}, "want \"- fstype source super-options\" at the end of " + strconv.Quote(clip(line))
	}
	m.FSType = unescapeOctal(f[sep+1])
	m.Source = unescapeOctal(f[sep+2])
	m.SuperOptions = unescapeOctal(f[sep+3])
	return m, ""
}

// unescapeOctal decodes the \ooo escapes the kernel's mangle() writes for
// space, tab, newline and backslash; anything else is kept as written.
func unescapeOctal(b []byte) string {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for ; i >= 0; i = bytes.IndexByte(b, '\\') {
		out = append(out, b[:i]...)
		b = b[i:]
		if len(b) >= 4 && isOctal(b[1]) && isOctal(b[2]) && isOctal(b[3]) && b[1] <= '3' {
			out = append(out, (b[1]-'0')<<6|(b[2]-'0')<<3|(b[3]-'0'))
			b = b[4:]
			continue
		}
		out = append(out, '\\')
		b = b[1:]
	}
	return string(append(out, b...))
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
