package proc

import (
	"bytes"
	"io"
	"sort"
	"strings"
)

// knownVMFlags are the two-letter VmFlags mnemonics of fs/proc/task_mmu.c
// (show_smap_vma_flags), past and present. Their position here is their bit
// in VMFlags.known; the kernel's own bit numbers are not visible in smaps.
var knownVMFlags = [...]string{
	"rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "pf", "dw", "lo",
	"io", "sr", "rr", "dc", "de", "ac", "nr", "ht", "sf", "nl", "ar", "wf",
	"dd", "bt", "sd", "mm", "hg", "nh", "mg", "um", "uw", "mt", "ui", "ss",
	"sl", "lf", "dp", "gu", "pk", "p0", "p1", "p2", "p3", "p4", "??",
}

var vmFlagBit = func() map[string]uint64 {
	m := make(map[string]uint64, len(knownVMFlags))
	for i, f := range knownVMFlags {
		m[f] = 1 << i
	}
	return m
}()

// VMFlags is the set of VmFlags mnemonics of one VMA ("rd", "gd", "sd", ...).
// Known mnemonics are bits; ones a newer kernel adds are kept as strings.
type VMFlags struct {
	known uint64
	other []string
}

// Has reports whether the two-letter flag f is set.
func (f VMFlags) Has(flag string) bool {
	if b, ok := vmFlagBit[flag]; ok {
		return f.known&b != 0
	}
	for _, o := range f.other {
		if o == flag {
			return true
		}
	}
	return false
}

func (f *VMFlags) add(flag []byte) {
	if b, ok := vmFlagBit[string(flag)]; ok {
		f.known |= b
		return
	}
	s := string(flag)
	for _, o := range f.other {
		if o == s {
			return
		}
	}
	f.other = append(f.other, s)
}

// List returns the flags, sorted.
func (f VMFlags) List() []string {
	var l []string
	for i, name := range knownVMFlags {
		if f.known&(1<<i) != 0 {
			l = append(l, name)
		}
	}
	l = append(l, f.other...)
	sort.Strings(l)
	return l
}

// String is the flags as smaps prints them, but sorted.
func (f VMFlags) String() string { return strings.Join(f.List(), " ") }

// The flags dump acts on.
func (f VMFlags) GrowsDown() bool   { return f.Has("gd") } // VM_GROWSDOWN: a stack's guard gap moves with it
func (f VMFlags) SoftDirty() bool   { return f.Has("sd") } // VM_SOFTDIRTY: whole VMA counts as written
func (f VMFlags) DontDump() bool    { return f.Has("dd") } // MADV_DONTDUMP
func (f VMFlags) WipeOnFork() bool  { return f.Has("wf") } // MADV_WIPEONFORK
func (f VMFlags) DontFork() bool    { return f.Has("dc") } // MADV_DONTFORK (VM_DONTCOPY)
func (f VMFlags) Mergeable() bool   { return f.Has("mg") } // MADV_MERGEABLE (KSM)
func (f VMFlags) Shared() bool      { return f.Has("sh") } // VM_SHARED
func (f VMFlags) MayShare() bool    { return f.Has("ms") } // VM_MAYSHARE: MAP_SHARED even if read-only
func (f VMFlags) Locked() bool      { return f.Has("lo") } // mlock
func (f VMFlags) LockOnFault() bool { return f.Has("lf") } // mlock2(MLOCK_ONFAULT)
func (f VMFlags) IO() bool          { return f.Has("io") } // device memory: never read it
func (f VMFlags) PFNMap() bool      { return f.Has("pf") } // raw PFNs: no struct page behind
func (f VMFlags) SeqRead() bool     { return f.Has("sr") } // MADV_SEQUENTIAL
func (f VMFlags) RandRead() bool    { return f.Has("rr") } // MADV_RANDOM
func (f VMFlags) HugeTLB() bool     { return f.Has("ht") } // hugetlbfs
func (f VMFlags) HugePage() bool    { return f.Has("hg") } // MADV_HUGEPAGE
func (f VMFlags) NoHugePage() bool  { return f.Has("nh") } // MADV_NOHUGEPAGE
func (f VMFlags) UffdMissing() bool { return f.Has("um") } // registered with userfaultfd, missing mode
func (f VMFlags) UffdWP() bool      { return f.Has("uw") } // registered with userfaultfd, write-protect mode
func (f VMFlags) UffdMinor() bool   { return f.Has("ui") } // registered with userfaultfd, minor mode
func (f VMFlags) ShadowStack() bool { return f.Has("ss") } // x86 shadow stack
func (f VMFlags) Sealed() bool      { return f.Has("sl") } // mseal
func (f VMFlags) Droppable() bool   { return f.Has("dp") } // MAP_DROPPABLE

// SmapsVMA is one VMA of /proc/PID/smaps: the maps line, the flags and the
// counters dump uses (in bytes).
type SmapsVMA struct {
	VMA
	Flags     VMFlags
	Rss       uint64
	Pss       uint64
	Anonymous uint64
	Swap      uint64
	Locked    uint64
	// KernelPageSize is the size of the area's pages: 4096, or that of
	// its huge pages for hugetlb.
	KernelPageSize uint64
}

// ParseSmaps parses /proc/PID/smaps.
func ParseSmaps(r io.Reader) ([]SmapsVMA, error) {
	var vmas []SmapsVMA
	p := newMapsParser()
	sc := newLineScanner(r, "smaps")
	for sc.Scan() {
		line := sc.Bytes()
		key, rest, ok := cutByte(line, ':')
		// Header lines start with the address range, which holds no ':'
		// before its first space; attribute lines are "Key: value".
		if !ok || bytes.IndexByte(key, ' ') >= 0 {
			v, err := p.parseLine(line)
			if err != nil {
				return nil, sc.errorf("%v", err)
			}
			vmas = append(vmas, SmapsVMA{VMA: v})
			continue
		}
		if len(vmas) == 0 {
			return nil, sc.errorf("%q before the first VMA line", key)
		}
		cur := &vmas[len(vmas)-1]
		var dst *uint64
		switch string(key) {
		case "VmFlags":
			for _, f := range bytes.Fields(rest) {
				cur.Flags.add(f)
			}
			continue
		case "Rss":
			dst = &cur.Rss
		case "Pss":
			dst = &cur.Pss
		case "Anonymous":
			dst = &cur.Anonymous
		case "Swap":
			dst = &cur.Swap
		case "Locked":
			dst = &cur.Locked
		case "KernelPageSize":
			dst = &cur.KernelPageSize
		default:
			continue
		}
		n, ok := parseKB(rest)
		if !ok {
			return nil, sc.errorf("bad %s value %q, want \"N kB\"", key, trimSpace(rest))
		}
		*dst = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return vmas, nil
}

// ReadSmaps reads /proc/PID/smaps.
func ReadSmaps(pid int) ([]SmapsVMA, error) {
	return parseFile(Path(pid, "smaps"), ParseSmaps)
}

// parseKB parses "   123 kB" into bytes.
func parseKB(b []byte) (uint64, bool) {
	b = trimSpace(b)
	num, ok := bytes.CutSuffix(b, []byte(" kB"))
	if !ok {
		return 0, false
	}
	n, ok := parseUint(trimSpace(num), 10, 54)
	return n << 10, ok
}
