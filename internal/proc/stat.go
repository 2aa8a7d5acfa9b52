package proc

import (
	"bytes"
	"fmt"
)

// PFKthread is PF_KTHREAD in Stat.Flags: a kernel thread, which dump refuses.
const PFKthread = 0x00200000

// Stat is what dump needs from /proc/PID/stat (or task/TID/stat). Field
// numbers are those of proc(5). The kernel prints the mm fields (StartCode
// and on) as 0 unless the reader may ptrace the task, and for tasks without
// an mm (kernel threads, zombies).
type Stat struct {
	Pid        int    // (1)
	Comm       string // (2) without the parentheses
	State      byte   // (3)
	PPid       int    // (4)
	Pgrp       int    // (5)
	Session    int    // (6)
	TTYNr      uint32 // (7) encoded device number of the controlling tty
	TPGid      int    // (8)
	Flags      uint32 // (9) PF_* flags
	NumThreads int    // (20)
	StartTime  uint64 // (22) clock ticks after boot
	StartCode  uint64 // (26)
	EndCode    uint64 // (27)
	StartStack uint64 // (28)
	ExitSignal int    // (38)
	StartData  uint64 // (45)
	EndData    uint64 // (46)
	StartBrk   uint64 // (47)
	ArgStart   uint64 // (48)
	ArgEnd     uint64 // (49)
	EnvStart   uint64 // (50)
	EnvEnd     uint64 // (51)
	ExitCode   int    // (52) as waitpid reports it
}

// IsKernelThread reports PF_KTHREAD.
func (s *Stat) IsKernelThread() bool { return s.Flags&PFKthread != 0 }

// statFields is the number of fields since Linux 3.5; later ones are ignored.
const statFields = 52

// ParseStat parses /proc/PID/stat. It takes the whole file because comm may
// hold any byte, a newline or ')' included: comm ends at the last ')'.
func ParseStat(b []byte) (*Stat, error) {
	bad := func(format string, args ...any) error {
		return parseErrorf("stat", 0, format, args...)
	}
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return nil, bad("no (comm) in %q", clip(b))
	}
	st := &Stat{Comm: string(b[open+1 : closing])}
	pid, ok := parseInt(bytes.TrimRight(b[:open], " "))
	if !ok {
		return nil, bad("bad pid %q", b[:open])
	}
	st.Pid = pid

	rest := bytes.TrimRight(b[closing+1:], "\n")
	var f [statFields + 1][]byte // 1-based, as proc(5) counts
	n := 2
	for _, field := range bytes.Split(bytes.TrimPrefix(rest, []byte(" ")), []byte(" ")) {
		n++
		if n > statFields {
			break
		}
		f[n] = field
	}
	if n < statFields {
		return nil, bad("%d fields, want at least %d", n, statFields)
	}
	if len(f[3]) != 1 {
		return nil, bad("bad state %q", f[3])
	}
	st.State = f[3][0]

	ints := []struct {
		field int
		dst   *int
	}{{4, &st.PPid}, {5, &st.Pgrp}, {6, &st.Session}, {8, &st.TPGid}, {20, &st.NumThreads}, {38, &st.ExitSignal}, {52, &st.ExitCode}}
	for _, x := range ints {
		if *x.dst, ok = parseInt(f[x.field]); !ok {
			return nil, bad("field %d: bad number %q", x.field, f[x.field])
		}
	}
	u32s := []struct {
		field int
		dst   *uint32
	}{{7, &st.TTYNr}, {9, &st.Flags}}
	for _, x := range u32s {
		v, ok := parseUint(f[x.field], 10, 32)
		if !ok {
			return nil, bad("field %d: bad number %q", x.field, f[x.field])
		}
		*x.dst = uint32(v)
	}
	u64s := []struct {
		field int
		dst   *uint64
	}{
		{22, &st.StartTime}, {26, &st.StartCode}, {27, &st.EndCode}, {28, &st.StartStack},
		{45, &st.StartData}, {46, &st.EndData}, {47, &st.StartBrk}, {48, &st.ArgStart},
		{49, &st.ArgEnd}, {50, &st.EnvStart}, {51, &st.EnvEnd},
	}
	for _, x := range u64s {
		if *x.dst, ok = parseUint(f[x.field], 10, 64); !ok {
			return nil, bad("field %d: bad number %q", x.field, f[x.field])
		}
	}
	return st, nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (*Stat, error) {
	return readStat(Path(pid, "stat"))
}

// ReadTaskStat reads /proc/PID/task/TID/stat.
func ReadTaskStat(pid, tid int) (*Stat, error) {
	return readStat(Path(pid, "task", itoa(tid), "stat"))
}

func readStat(path string) (*Stat, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	st, err := ParseStat(b)
	return st, renameError(err, path)
}

// clip shortens input quoted in an error.
func clip(b []byte) string {
	const max = 80
	if len(b) > max {
		return fmt.Sprintf("%s...", b[:max])
	}
	return string(b)
}
