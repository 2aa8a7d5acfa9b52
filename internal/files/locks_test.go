package files

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// TestLockEntry: each lock line becomes CRIU's entry (FL_* kind, F_RDLCK or
// F_WRLCK, length 0 to the end) and reads back as the same lock.
func TestLockEntry(t *testing.T) {
	for _, c := range []struct {
		line          string
		flag, typ     uint32
		start, length int64
		desc          string
	}{
		{"1: POSIX  ADVISORY  WRITE 10 00:1f:5 2 5", 1, 1, 2, 4, "a POSIX write lock on bytes 2-5"},
		{"1: POSIX  ADVISORY  READ 10 00:1f:5 100 EOF", 1, 0, 100, 0, "a POSIX read lock on bytes 100 to the end"},
		{"2: FLOCK  ADVISORY  WRITE 10 00:1f:5 0 EOF", 2, 1, 0, 0, "an exclusive flock lock"},
		{"2: FLOCK  ADVISORY  READ 10 00:1f:5 0 EOF", 2, 0, 0, 0, "a shared flock lock"},
		{"3: OFDLCK ADVISORY  READ -1 00:1f:5 0 EOF", 4, 0, 0, 0, "an OFD read lock on the whole file"},
		{"3: OFDLCK ADVISORY  WRITE -1 00:1f:5 7 7", 4, 1, 7, 1, "an OFD write lock on byte 7"},
	} {
		l, ok := proc.ParseLock(c.line)
		if !ok {
			t.Fatalf("%q does not parse", c.line)
		}
		e, err := LockEntry(l, 42, 3)
		if err != nil {
			t.Fatalf("%q: %v", c.line, err)
		}
		want := &pb.FileLockEntry{Flag: proto.Uint32(c.flag), Type: proto.Uint32(c.typ), Pid: proto.Int32(42), Fd: proto.Int32(3), Start: proto.Int64(c.start), Len: proto.Int64(c.length)}
		if !proto.Equal(e, want) {
			t.Errorf("%q: entry %v, want %v", c.line, e, want)
		}
		back, err := LockOf(e)
		if err != nil || back.Describe() != c.desc || back.Pid != 42 {
			t.Errorf("%q: read back as %+v (%q), %v; want %q", c.line, back, back.Describe(), err, c.desc)
		}
	}
}

// TestLockOfRefuses: entries restore cannot take again are errors that say
// what they are (CRIU writes leases and Samba's LOCK_MAND locks too).
func TestLockOfRefuses(t *testing.T) {
	for _, c := range []struct {
		e    *pb.FileLockEntry
		want string
	}{
		{&pb.FileLockEntry{Flag: proto.Uint32(8), Type: proto.Uint32(0)}, "a lease: gockpt does not restore file leases"},
		{&pb.FileLockEntry{Flag: proto.Uint32(2), Type: proto.Uint32(32 | 64)}, "a FLOCK lock of type 0x60, neither read nor write"},
		{&pb.FileLockEntry{Flag: proto.Uint32(16), Type: proto.Uint32(0)}, "a lock of unknown kind 0x10"},
		{&pb.FileLockEntry{Flag: proto.Uint32(1), Type: proto.Uint32(1), Start: proto.Int64(-1)}, "a POSIX lock on 0 bytes from -1"},
	} {
		if _, err := LockOf(c.e); err == nil || err.Error() != c.want {
			t.Errorf("%v: %v, want %q", c.e, err, c.want)
		}
	}
	if _, err := LockEntry(proc.Lock{Class: "LEASE", Type: "READ"}, 1, 3); err == nil {
		t.Error("a lease became an entry")
	}
}

func fdinfoState(t *testing.T, pid, fd int, text string) *fdState {
	t.Helper()
	fi, err := proc.ParseFdinfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return &fdState{pid: pid, fd: fd, target: "/f", info: fi}
}

// TestLockSetDedup: a lock shows on every fd of its open file description
// (flock, OFD) or of its fd table (POSIX): it is one entry, taken again
// by the task that took it when that task holds the file too.
func TestLockSetDedup(t *testing.T) {
	const (
		flock = "lock:\t1: FLOCK  ADVISORY  WRITE 10 00:1f:5 0 EOF\n"
		posix = "lock:\t2: POSIX  ADVISORY  READ 10 00:1f:5 0 9\n"
		ofd   = "lock:\t3: OFDLCK ADVISORY  WRITE -1 00:1f:5 20 29\n"
	)
	var ls lockSet
	for _, s := range []struct {
		pid, fd int
		id      uint32
		text    string
	}{
		{11, 4, 1, flock + ofd}, // a child's fd, seen first, on the OFD task 10 locked
		{10, 3, 1, flock + posix + ofd},
		{10, 5, 1, flock + posix + ofd}, // a dup of fd 3
		{12, 3, 2, posix},               // another fd table's own POSIX lock, same range
	} {
		if err := ls.note(fdinfoState(t, s.pid, s.fd, "pos:\t0\nflags:\t02\n"+s.text), s.id); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, e := range ls.entries {
		l, _ := LockOf(e)
		got = append(got, l.Describe()+" by "+fmt.Sprintf("%d fd %d", e.GetPid(), e.GetFd()))
	}
	want := []string{
		"an exclusive flock lock by 10 fd 3",
		"an OFD write lock on bytes 20-29 by 11 fd 4",
		"a POSIX read lock on bytes 0-9 by 10 fd 3",
		"a POSIX read lock on bytes 0-9 by 12 fd 3",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
