package proc

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Perms are a VMA's protection and sharing as maps prints them ("rw-p").
type Perms uint8

const (
	PermRead Perms = 1 << iota
	PermWrite
	PermExec
	PermShared // 's'; 'p' is private
)

func (p Perms) String() string {
	b := []byte("---p")
	if p&PermRead != 0 {
		b[0] = 'r'
	}
	if p&PermWrite != 0 {
		b[1] = 'w'
	}
	if p&PermExec != 0 {
		b[2] = 'x'
	}
	if p&PermShared != 0 {
		b[3] = 's'
	}
	return string(b)
}

// Kind is what a VMA's path column says about it.
type Kind uint8

const (
	KindAnon           Kind = iota // no path: private or shared anonymous memory
	KindFile                       // a file path ("/...", "/memfd:x (deleted)", "/SYSV...")
	KindHeap                       // [heap]
	KindStack                      // [stack] (or [stack:TID] before Linux 4.5)
	KindVDSO                       // [vdso]
	KindVVAR                       // [vvar]
	KindVVARVClock                 // [vvar_vclock] (Linux 6.13+)
	KindVSyscall                   // [vsyscall]
	KindUprobes                    // [uprobes]
	KindAnonNamed                  // [anon:NAME], prctl(PR_SET_VMA_ANON_NAME)
	KindAnonShmemNamed             // [anon_shmem:NAME]
	KindOther                      // another [bracketed] name or a non-path name
)

var kindNames = [...]string{"anon", "file", "heap", "stack", "vdso", "vvar", "vvar_vclock", "vsyscall", "uprobes", "anon-named", "anon-shmem-named", "other"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// VMA is one line of /proc/PID/maps.
type VMA struct {
	Start, End   uint64
	Perms        Perms
	Offset       uint64 // file offset of Start
	Major, Minor uint32 // device of the file, 0:0 for anonymous memory
	Inode        uint64
	// Path is the last column with any " (deleted)" suffix removed: a file
	// path, a special name such as "[heap]", or empty.
	Path    string
	Deleted bool // the kernel appended " (deleted)"
	Kind    Kind
}

// Len is the size of the VMA in bytes.
func (v *VMA) Len() uint64 { return v.End - v.Start }

// Shared reports a MAP_SHARED mapping.
func (v *VMA) Shared() bool { return v.Perms&PermShared != 0 }

// AnonName returns NAME of [anon:NAME] and [anon_shmem:NAME] mappings.
func (v *VMA) AnonName() string {
	switch v.Kind {
	case KindAnonNamed:
		return v.Path[len("[anon:") : len(v.Path)-1]
	case KindAnonShmemNamed:
		return v.Path[len("[anon_shmem:") : len(v.Path)-1]
	}
	return ""
}

func (v *VMA) String() string {
	s := fmt.Sprintf("VMA %#x-%#x %s", v.Start, v.End, v.Perms)
	if v.Path != "" {
		s += " " + v.Path
	}
	if v.Deleted {
		s += " (deleted)"
	}
	return s
}

const deletedSuffix = " (deleted)"

// ParseMaps parses /proc/PID/maps.
func ParseMaps(r io.Reader) ([]VMA, error) {
	var vmas []VMA
	p := newMapsParser()
	sc := newLineScanner(r, "maps")
	for sc.Scan() {
		v, err := p.parseLine(sc.Bytes())
		if err != nil {
			return nil, sc.errorf("%v", err)
		}
		vmas = append(vmas, v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return vmas, nil
}

// ReadMaps reads /proc/PID/maps.
func ReadMaps(pid int) ([]VMA, error) {
	return parseFile(Path(pid, "maps"), ParseMaps)
}

// ParseMapsLine parses one line of /proc/PID/maps, without its newline.
func ParseMapsLine(line []byte) (VMA, error) {
	return (&mapsParser{}).parseLine(line)
}

// mapsParser shares path strings between VMAs: a library has four or five
// VMAs with the same path, and a big process thousands of VMAs.
type mapsParser struct {
	paths map[string]string
}

func newMapsParser() *mapsParser { return &mapsParser{paths: map[string]string{}} }

func (p *mapsParser) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if p.paths == nil {
		return string(b)
	}
	if s, ok := p.paths[string(b)]; ok {
		return s
	}
	s := string(b)
	p.paths[s] = s
	return s
}

// parseLine parses "start-end perms offset major:minor inode   path".
func (p *mapsParser) parseLine(line []byte) (VMA, error) {
	var v VMA
	field := func(name string) ([]byte, error) {
		f, rest, ok := cutByte(line, ' ')
		if !ok || len(f) == 0 {
			return nil, fmt.Errorf("missing %s in maps line %q", name, line)
		}
		line = rest
		return f, nil
	}
	addrs, err := field("address range")
	if err != nil {
		return v, err
	}
	start, end, ok := cutByte(addrs, '-')
	var ok1, ok2 bool
	v.Start, ok1 = parseUint(start, 16, 64)
	v.End, ok2 = parseUint(end, 16, 64)
	if !ok || !ok1 || !ok2 || v.End < v.Start {
		return v, fmt.Errorf("bad address range %q", addrs)
	}
	perms, err := field("permissions")
	if err != nil {
		return v, err
	}
	if v.Perms, ok = parsePerms(perms); !ok {
		return v, fmt.Errorf("bad permissions %q", perms)
	}
	off, err := field("offset")
	if err != nil {
		return v, err
	}
	if v.Offset, ok = parseUint(off, 16, 64); !ok {
		return v, fmt.Errorf("bad offset %q", off)
	}
	dev, err := field("device")
	if err != nil {
		return v, err
	}
	if v.Major, v.Minor, ok = parseDev(dev); !ok {
		return v, fmt.Errorf("bad device %q", dev)
	}
	// The inode is the last fixed field; a VMA without path ends there.
	ino, rest, _ := cutByte(line, ' ')
	if v.Inode, ok = parseUint(ino, 10, 64); !ok {
		return v, fmt.Errorf("bad inode %q", ino)
	}
	path := bytes.TrimLeft(rest, " ")
	if bytes.HasSuffix(path, []byte(deletedSuffix)) {
		v.Deleted = true
		path = path[:len(path)-len(deletedSuffix)]
	}
	v.Path = p.intern(path)
	v.Kind = kindOf(v.Path)
	return v, nil
}

func parsePerms(b []byte) (Perms, bool) {
	if len(b) != 4 {
		return 0, false
	}
	var p Perms
	for i, want := range [3]byte{'r', 'w', 'x'} {
		switch b[i] {
		case want:
			p |= 1 << i
		case '-':
		default:
			return 0, false
		}
	}
	switch b[3] {
	case 's':
		p |= PermShared
	case 'p':
	default:
		return 0, false
	}
	return p, true
}

// parseDev parses "fe:01" (hex, as maps and fdinfo print devices).
func parseDev(b []byte) (major, minor uint32, ok bool) {
	ma, mi, found := cutByte(b, ':')
	if !found {
		return 0, 0, false
	}
	M, ok1 := parseUint(ma, 16, 32)
	m, ok2 := parseUint(mi, 16, 32)
	return uint32(M), uint32(m), ok1 && ok2
}

func kindOf(path string) Kind {
	switch {
	case path == "":
		return KindAnon
	case path[0] == '/':
		return KindFile
	case path[0] != '[' || path[len(path)-1] != ']':
		return KindOther
	}
	switch path {
	case "[heap]":
		return KindHeap
	case "[stack]":
		return KindStack
	case "[vdso]":
		return KindVDSO
	case "[vvar]":
		return KindVVAR
	case "[vvar_vclock]":
		return KindVVARVClock
	case "[vsyscall]":
		return KindVSyscall
	case "[uprobes]":
		return KindUprobes
	}
	switch {
	case strings.HasPrefix(path, "[anon:"):
		return KindAnonNamed
	case strings.HasPrefix(path, "[anon_shmem:"):
		return KindAnonShmemNamed
	case strings.HasPrefix(path, "[stack:"):
		return KindStack
	}
	return KindOther
}
