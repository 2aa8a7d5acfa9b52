package proc

import (
	"bytes"
	"io"
)

// Status is what dump needs from /proc/PID/status (or task/TID/status).
type Status struct {
	Name      string // comm, with the kernel's escapes of '\\' and '\n'
	State     byte   // 'R', 'S', 'D', 'T', 't', 'Z', 'X', 'I', ...
	Tgid      int
	Pid       int
	PPid      int
	TracerPid int
	Uid       [4]uint32 // real, effective, saved, filesystem
	Gid       [4]uint32
	Groups    []uint32
	// NS* are the ids in each PID namespace: procfs's first, the task's own
	// (innermost) last.
	NSpid   []int
	NStgid  []int
	NSsid   []int
	NSpgid  []int
	Threads int
	// SigQ is "queued/limit".
	SigQueued, SigQueueLimit uint64
	SigPnd, ShdPnd, SigBlk   uint64 // pending (thread), pending (process), blocked
	SigIgn, SigCgt           uint64 // ignored, caught
	CapInh, CapPrm, CapEff   uint64
	CapBnd, CapAmb           uint64
	NoNewPrivs               bool
	Seccomp                  int // 0 off, 1 strict, 2 filter
	SeccompFilters           int
	Umask                    uint32
	HasUmask                 bool // Linux 4.7+
	Kthread                  bool // "Kthread: 1" (Linux 6.4+)
}

// ParseStatus parses /proc/PID/status. Lines it does not use are skipped.
func ParseStatus(r io.Reader) (*Status, error) {
	st := &Status{}
	sc := newLineScanner(r, "status")
	for sc.Scan() {
		key, val, ok := cutByte(sc.Bytes(), ':')
		if !ok {
			return nil, sc.errorf("line %q has no ':'", sc.Bytes())
		}
		if err := st.set(key, trimSpace(val)); err != "" {
			return nil, sc.errorf("bad %s value %q: %s", key, trimSpace(val), err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return st, nil
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (*Status, error) {
	return parseFile(Path(pid, "status"), ParseStatus)
}

// ReadTaskStatus reads /proc/PID/task/TID/status.
func ReadTaskStatus(pid, tid int) (*Status, error) {
	return parseFile(Path(pid, "task", itoa(tid), "status"), ParseStatus)
}

// set stores one status line; a non-empty result says what is wrong.
func (st *Status) set(key, val []byte) string {
	switch string(key) {
	case "Name":
		st.Name = string(val)
	case "State":
		// "S (sleeping)"
		if len(val) == 0 {
			return "want a state letter"
		}
		st.State = val[0]
	case "Tgid":
		return setInt(&st.Tgid, val)
	case "Pid":
		return setInt(&st.Pid, val)
	case "PPid":
		return setInt(&st.PPid, val)
	case "TracerPid":
		return setInt(&st.TracerPid, val)
	case "Threads":
		return setInt(&st.Threads, val)
	case "Uid":
		return setIDs(&st.Uid, val)
	case "Gid":
		return setIDs(&st.Gid, val)
	case "Groups":
		fs := bytes.Fields(val)
		st.Groups = make([]uint32, 0, len(fs))
		for _, f := range fs {
			g, ok := parseUint(f, 10, 32)
			if !ok {
				return "want group ids"
			}
			st.Groups = append(st.Groups, uint32(g))
		}
	case "NSpid":
		return setIntList(&st.NSpid, val)
	case "NStgid":
		return setIntList(&st.NStgid, val)
	case "NSsid":
		return setIntList(&st.NSsid, val)
	case "NSpgid":
		return setIntList(&st.NSpgid, val)
	case "SigQ":
		q, l, ok := cutByte(val, '/')
		var ok1, ok2 bool
		st.SigQueued, ok1 = parseUint(q, 10, 64)
		st.SigQueueLimit, ok2 = parseUint(l, 10, 64)
		if !ok || !ok1 || !ok2 {
			return "want queued/limit"
		}
	case "SigPnd":
		return setHex(&st.SigPnd, val)
	case "ShdPnd":
		return setHex(&st.ShdPnd, val)
	case "SigBlk":
		return setHex(&st.SigBlk, val)
	case "SigIgn":
		return setHex(&st.SigIgn, val)
	case "SigCgt":
		return setHex(&st.SigCgt, val)
	case "CapInh":
		return setHex(&st.CapInh, val)
	case "CapPrm":
		return setHex(&st.CapPrm, val)
	case "CapEff":
		return setHex(&st.CapEff, val)
	case "CapBnd":
		return setHex(&st.CapBnd, val)
	case "CapAmb":
		return setHex(&st.CapAmb, val)
	case "NoNewPrivs":
		var n int
		if e := setInt(&n, val); e != "" {
			return e
		}
		st.NoNewPrivs = n != 0
	case "Seccomp":
		return setInt(&st.Seccomp, val)
	case "Seccomp_filters":
		return setInt(&st.SeccompFilters, val)
	case "Umask":
		u, ok := parseUint(val, 8, 32)
		if !ok {
			return "want an octal mask"
		}
		st.Umask, st.HasUmask = uint32(u), true
	case "Kthread":
		var n int
		if e := setInt(&n, val); e != "" {
			return e
		}
		st.Kthread = n != 0
	}
	return ""
}

func setInt(dst *int, val []byte) string {
	n, ok := parseInt(val)
	if !ok {
		return "want a decimal number"
	}
	*dst = n
	return ""
}

func setHex(dst *uint64, val []byte) string {
	n, ok := parseUint(val, 16, 64)
	if !ok {
		return "want a 64-bit hex mask"
	}
	*dst = n
	return ""
}

func setIDs(dst *[4]uint32, val []byte) string {
	fs := bytes.Fields(val)
	if len(fs) != 4 {
		return "want 4 ids: real, effective, saved, filesystem"
	}
	for i, f := range fs {
		id, ok := parseUint(f, 10, 32)
		if !ok {
			return "want 4 ids: real, effective, saved, filesystem"
		}
		dst[i] = uint32(id)
	}
	return ""
}

func setIntList(dst *[]int, val []byte) string {
	fs := bytes.Fields(val)
	l := make([]int, 0, len(fs))
	for _, f := range fs {
		n, ok := parseInt(f)
		if !ok {
			return "want decimal numbers"
		}
		l = append(l, n)
	}
	*dst = l
	return ""
}
