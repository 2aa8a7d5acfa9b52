package proc

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Lock is one line of /proc/locks, or the part after "lock:" of a line of
// /proc/PID/fdinfo/FD: a file lock or lease and who holds it.
type Lock struct {
	// Class is POSIX, OFDLCK, FLOCK, LEASE, DELEG or ACCESS, as printed.
	Class string
	// Mode is ADVISORY for locks, ACTIVE, BREAKING or BREAKER for leases.
	Mode string
	// Type is READ, WRITE or UNLCK.
	Type string
	// Pid holds the lock; -1 for OFD locks, which belong to an open file
	// description rather than a process.
	Pid int
	// Dev is the device as the kernel prints it ("00:1f"); Ino the inode.
	Dev string
	Ino uint64
	// Start and End are the byte range of a POSIX or OFD lock; End is -1
	// for "EOF" (to the end of the file, however long it grows).
	Start, End int64
	// Waiter: a process blocked waiting for this lock ("->" lines), not a
	// holder.
	Waiter bool
}

// ParseLock parses one lock line: "1: POSIX  ADVISORY  WRITE 1234
// 00:1f:5678 0 EOF", with or without the "N:" id and a "->" waiter mark.
func ParseLock(line string) (Lock, bool) {
	f := strings.Fields(line)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:]
	}
	var l Lock
	if len(f) > 0 && f[0] == "->" {
		l.Waiter = true
		f = f[1:]
	}
	if len(f) != 7 {
		return Lock{}, false
	}
	l.Class, l.Mode, l.Type = f[0], f[1], f[2]
	pid, err := strconv.Atoi(f[3])
	if err != nil {
		return Lock{}, false
	}
	l.Pid = pid
	i := strings.LastIndexByte(f[4], ':')
	if i < 0 {
		return Lock{}, false
	}
	l.Dev = f[4][:i]
	if l.Ino, err = strconv.ParseUint(f[4][i+1:], 10, 64); err != nil && f[4] != "<none>:0" {
		return Lock{}, false
	}
	if l.Start, err = strconv.ParseInt(f[5], 10, 64); err != nil {
		return Lock{}, false
	}
	if f[6] == "EOF" {
		l.End = -1
	} else if l.End, err = strconv.ParseInt(f[6], 10, 64); err != nil {
		return Lock{}, false
	}
	return l, true
}

// ParseLocks parses /proc/locks; lines it cannot read are skipped (the
// format has been stable since Linux 2.6, but a lock class added later
// must not make dump fail where it would not matter).
func ParseLocks(r io.Reader) []Lock {
	var out []Lock
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLineLen)
	for sc.Scan() {
		if l, ok := ParseLock(sc.Text()); ok {
			out = append(out, l)
		}
	}
	return out
}

// ReadLocks reads /proc/locks.
func ReadLocks() ([]Lock, error) {
	b, err := readFile(Root + "/locks")
	if err != nil {
		return nil, err
	}
	return ParseLocks(bytes.NewReader(b)), nil
}

// FdLocks returns the locks and leases an fdinfo shows on its file: those of
// the open file description (flock, OFD, leases) and the POSIX locks of the
// task's fd table.
func (fi *Fdinfo) FdLocks() []Lock {
	var out []Lock
	for _, e := range fi.Entries {
		rest, ok := strings.CutPrefix(e, "lock:")
		if !ok {
			continue
		}
		if l, ok := ParseLock(rest); ok {
			out = append(out, l)
		}
	}
	return out
}

// Describe says what the lock is in words: "a POSIX write lock on bytes
// 0-99", "an OFD read lock on the whole file", "an exclusive flock lock",
// "a read lease".
func (l Lock) Describe() string {
	typ := strings.ToLower(l.Type)
	span := func() string {
		switch {
		case l.Start == 0 && l.End < 0:
			return "the whole file"
		case l.End < 0:
			return "bytes " + strconv.FormatInt(l.Start, 10) + " to the end"
		case l.Start == l.End:
			return "byte " + strconv.FormatInt(l.Start, 10)
		}
		return "bytes " + strconv.FormatInt(l.Start, 10) + "-" + strconv.FormatInt(l.End, 10)
	}
	switch l.Class {
	case "POSIX":
		return "a POSIX " + typ + " lock on " + span()
	case "OFDLCK":
		return "an OFD " + typ + " lock on " + span()
	case "FLOCK":
		if l.Type == "WRITE" {
			return "an exclusive flock lock"
		}
		return "a shared flock lock"
	case "LEASE":
		return "a " + typ + " lease"
	case "DELEG":
		return "a " + typ + " delegation"
	}
	return "a " + strings.ToLower(l.Class) + " " + typ + " lock"
}

// IsLease tells leases and delegations from locks.
func (l Lock) IsLease() bool { return l.Class == "LEASE" || l.Class == "DELEG" }
