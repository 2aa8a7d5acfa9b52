package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Mapping is one line of /proc/PID/maps, or one area of /proc/PID/smaps
// with its VmFlags and ProtectionKey.
type Mapping struct {
	Start, End uint64
	Perms      string
	Offset     uint64
	Dev        string
	Inode      uint64
	Path       string
	Flags      string // VmFlags mnemonics, space-separated as smaps prints them
	PKey       string // ProtectionKey, where the CPU has protection keys
}

// vdsoNames are the kernel-provided areas restore may move as one block: they
// are compared by size and layout relative to each other, not by address.
var vdsoNames = map[string]bool{"[vvar]": true, "[vvar_vclock]": true, "[vdso]": true}

// ParseMaps parses the text of /proc/PID/maps.
func ParseMaps(text string) ([]Mapping, error) {
	var out []Mapping
	for n, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("maps line %d %q: %w", n+1, line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseSmaps parses the text of /proc/PID/smaps: each area's maps line, and
// of the lines below it VmFlags and ProtectionKey (the rest are page counts,
// which change as the process touches memory).
func ParseSmaps(text string) ([]Mapping, error) {
	var out []Mapping
	for n, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if key, ok := strings.CutSuffix(f[0], ":"); ok {
			if len(out) == 0 {
				return nil, fmt.Errorf("smaps line %d %q: before the first area", n+1, line)
			}
			switch key {
			case "VmFlags":
				out[len(out)-1].Flags = strings.Join(f[1:], " ")
			case "ProtectionKey":
				out[len(out)-1].PKey = strings.Join(f[1:], " ")
			}
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("smaps line %d %q: %w", n+1, line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	// address perms offset dev inode [path]; the path may contain spaces.
	f := strings.Fields(line)
	if len(f) < 5 {
		return m, fmt.Errorf("%d fields, want at least 5", len(f))
	}
	se := strings.SplitN(f[0], "-", 2)
	if len(se) != 2 {
		return m, fmt.Errorf("bad address range %q", f[0])
	}
	var err error
	if m.Start, err = strconv.ParseUint(se[0], 16, 64); err != nil {
		return m, err
	}
	if m.End, err = strconv.ParseUint(se[1], 16, 64); err != nil {
		return m, err
	}
	m.Perms = f[1]
	if m.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return m, err
	}
	m.Dev = f[3]
	if m.Inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return m, err
	}
	if len(f) > 5 {
		// Keep the path exactly, spaces included: cut after the inode field.
		rest := line
		for i := 0; i < 5; i++ {
			rest = strings.TrimLeft(rest, " ")
			rest = rest[strings.IndexByte(rest, ' ')+1:]
		}
		m.Path = strings.TrimLeft(rest, " ")
	}
	return m, nil
}

// String is the maps line, with "vmflags=" and "pkey=" fields before the
// path where smaps gave them.
func (m Mapping) String() string {
	s := fmt.Sprintf("%x-%x %s %x %s %d", m.Start, m.End, m.Perms, m.Offset, m.Dev, m.Inode)
	if m.Flags != "" {
		s += " vmflags=" + strings.ReplaceAll(m.Flags, " ", ",")
	}
	if m.PKey != "" {
		s += " pkey=" + m.PKey
	}
	return s + " " + m.Path
}

// comparedVmFlags drops the VmFlags mnemonics restore may change (allowed
// "VmFlags ...").
func comparedVmFlags(flags string) string {
	var keep []string
	for _, f := range strings.Fields(flags) {
		if !allowedVmFlag(f) {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// NormalizeMaps turns maps into lines that must be equal before and after a
// restore: anonymous offsets, ghost-file identities and the VmFlags restore
// may change are dropped, adjacent areas the kernel may or may not have
// merged are merged, and the vDSO block is described relative to its own
// start (allowed "anonymous pgoff", "deleted file inode", "VmFlags ...",
// "adjacent areas merged", "vDSO address").
func NormalizeMaps(maps []Mapping) []string {
	areas, vdso := normalizeAreas(maps)
	return mapsLines(areas, vdso)
}

// NormalizeMapsPair is NormalizeMaps of the maps before a checkpoint (want)
// and after a restore (got), where what is allowed depends on both sides:
// an area of want marked `gu` and the adjacent areas it differs from only by
// that mark are taken as one where got has them as one area marked `gu`
// (allowed "merged area gains VmFlags gu").
func NormalizeMapsPair(want, got []Mapping) (wantLines, gotLines []string) {
	wa, wv := normalizeAreas(want)
	ga, gv := normalizeAreas(got)
	if allowed("merged area gains VmFlags gu") {
		wa = mergeGuardSpread(wa, ga)
	}
	return mapsLines(wa, wv), mapsLines(ga, gv)
}

// mergeGuardSpread replaces each run of two or more adjacent areas of want
// that got has as one area marked `gu` by that area, where every area of
// the run equals it apart from the mark and at least one of them has it.
func mergeGuardSpread(want, got []Mapping) []Mapping {
	byStart := map[uint64]Mapping{}
	for _, g := range got {
		if hasVmFlag(g.Flags, "gu") {
			byStart[g.Start] = g
		}
	}
	var out []Mapping
	for i := 0; i < len(want); i++ {
		g, ok := byStart[want[i].Start]
		if ok {
			if n := guardSpreadRun(want[i:], g); n > 1 {
				out = append(out, g)
				i += n - 1
				continue
			}
		}
		out = append(out, want[i])
	}
	return out
}

// guardSpreadRun returns how many areas at the start of want make up g as
// mergeGuardSpread accepts them, or 0.
func guardSpreadRun(want []Mapping, g Mapping) int {
	bare := withoutVmFlag(g.Flags, "gu")
	end, marked := g.Start, false
	for n, w := range want {
		if w.Start != end || w.End > g.End || w.Perms != g.Perms || w.Dev != g.Dev || w.Inode != g.Inode ||
			w.Path != g.Path || w.PKey != g.PKey || (w.Inode != 0 && w.Offset != g.Offset+(w.Start-g.Start)) {
			return 0
		}
		switch w.Flags {
		case g.Flags:
			marked = true
		case bare:
		default:
			return 0
		}
		end = w.End
		if end == g.End {
			if marked && n > 0 {
				return n + 1
			}
			return 0
		}
	}
	return 0
}

func hasVmFlag(flags, flag string) bool {
	for _, f := range strings.Fields(flags) {
		if f == flag {
			return true
		}
	}
	return false
}

func withoutVmFlag(flags, flag string) string {
	var keep []string
	for _, f := range strings.Fields(flags) {
		if f != flag {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// normalizeAreas drops and merges what NormalizeMaps does, and returns the
// vDSO block apart.
func normalizeAreas(maps []Mapping) (areas, vdso []Mapping) {
	var rest []Mapping
	for _, m := range maps {
		m.Flags = comparedVmFlags(m.Flags)
		if vdsoNames[m.Path] {
			vdso = append(vdso, m)
			continue
		}
		if m.Inode == 0 {
			// Anonymous: pgoff follows the address the area was created at
			// (or mremap'd from), which restore does not reproduce.
			m.Offset = 0
		}
		if strings.HasSuffix(m.Path, " (deleted)") {
			// A deleted file comes back as a new inode.
			m.Dev, m.Inode = "", 0
		}
		rest = append(rest, m)
	}
	return mergeAdjacent(rest), vdso
}

func mapsLines(areas, vdso []Mapping) []string {
	var out []string
	for _, m := range areas {
		out = append(out, m.String())
	}
	if len(vdso) > 0 {
		base := vdso[0].Start
		for _, m := range vdso {
			if m.Start < base {
				base = m.Start
			}
		}
		sort.Slice(vdso, func(i, j int) bool { return vdso[i].Start < vdso[j].Start })
		for _, m := range vdso {
			flags := ""
			if m.Flags != "" {
				flags = " vmflags=" + strings.ReplaceAll(m.Flags, " ", ",")
			}
			out = append(out, fmt.Sprintf("vdso-block +%x size %x %s%s %s", m.Start-base, m.End-m.Start, m.Perms, flags, m.Path))
		}
	}
	return out
}

func mergeAdjacent(maps []Mapping) []Mapping {
	var out []Mapping
	for _, m := range maps {
		if n := len(out); n > 0 {
			p := &out[n-1]
			same := p.End == m.Start && p.Perms == m.Perms && p.Dev == m.Dev && p.Inode == m.Inode && p.Path == m.Path &&
				p.Flags == m.Flags && p.PKey == m.PKey
			// File pages must also continue the previous area's file offset.
			if same && (m.Inode == 0 || p.Offset+(p.End-p.Start) == m.Offset) {
				p.End = m.End
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

var inodeLink = regexp.MustCompile(`^([a-z_]+):\[(\d+)\]$`)

// FD is what the runner compares about one file descriptor.
type FD struct {
	Target string   // readlink of /proc/PID/fd/N
	Flags  string   // fdinfo flags (octal, with O_CLOEXEC)
	Pos    string   // fdinfo pos
	Ino    string   // fdinfo ino
	Extra  []string // the other fdinfo lines (eventfd, epoll, ...), see ParseFdinfo
	Tfds   []Tfd    // the epoll targets among Extra, in the kernel's order
}

// Tfd is one epoll target of an fdinfo: its line as Extra holds it, the fd
// number it was added under, and the fds of the task that hold the open
// file it watches (kcmp KCMP_EPOLL_TFD, see epollHolders).
type Tfd struct {
	Line    string
	FD      int
	Holders []int
}

// hasPathIdentity says whether an fd's target is a file restore reopens by
// its path (the same inode), not one it recreates (allowed "fdinfo ino").
func hasPathIdentity(target string) bool {
	if strings.HasPrefix(target, "/proc/") && allowed("fdinfo ino /proc") {
		// procfs makes a new inode per lookup.
		return false
	}
	return strings.HasPrefix(target, "/") && !strings.HasSuffix(target, " (deleted)")
}

// NormalizeFDs rewrites inode-numbered targets (pipe:[123], socket:[456])
// and eventfd IDs into their kind and the order in which the object first
// appears across the tree, so that sharing is compared but the numbers are
// not (allowed "pipe and socket inodes", "fdinfo eventfd-id"). tree maps
// PID -> fd -> FD; the result maps PID -> lines "fd target flags pos [ino]
// [fdinfo lines]".
func NormalizeFDs(tree map[int]map[int]FD) map[int][]string {
	pids := sortedKeys(tree)
	seen := map[string]string{}
	count := map[string]int{}
	label := func(kind, key string) string {
		l, ok := seen[key]
		if !ok {
			count[kind]++
			l = fmt.Sprintf("%s#%d", kind, count[kind])
			seen[key] = l
		}
		return l
	}
	out := map[int][]string{}
	for _, pid := range pids {
		fds := tree[pid]
		for _, fd := range sortedKeys(fds) {
			f := fds[fd]
			target := f.Target
			pos := f.Pos
			if sm := inodeLink.FindStringSubmatch(target); sm != nil {
				target = label(sm[1], target)
				pos = "-" // pipes and sockets have no offset worth comparing
			}
			line := fmt.Sprintf("%d %s flags=%s pos=%s", fd, target, f.Flags, pos)
			if f.Ino != "" && (hasPathIdentity(f.Target) || !allowed("fdinfo ino")) {
				line += " ino=" + f.Ino
			}
			for _, x := range f.Extra {
				if id, ok := strings.CutPrefix(x, "eventfd-id: "); ok && allowed("fdinfo eventfd-id") {
					x = "eventfd " + label("eventfd", "eventfd-id:"+id)
				}
				line += "; " + x
			}
			out[pid] = append(out[pid], line)
		}
	}
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

// DiffLines reports the lines only in want and only in got, in order.
func DiffLines(what string, want, got []string) []string {
	var out []string
	wantSet := map[string]int{}
	gotSet := map[string]int{}
	for _, l := range want {
		wantSet[l]++
	}
	for _, l := range got {
		gotSet[l]++
	}
	for _, l := range want {
		if gotSet[l] == 0 {
			out = append(out, fmt.Sprintf("%s: lost   %s", what, l))
		} else {
			gotSet[l]--
		}
	}
	for _, l := range got {
		if wantSet[l] == 0 {
			out = append(out, fmt.Sprintf("%s: gained %s", what, l))
		} else {
			wantSet[l]--
		}
	}
	return out
}
