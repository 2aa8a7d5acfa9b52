package proc

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const procLocks = `1: POSIX  ADVISORY  WRITE 1234 00:1f:5678 2 5
2: OFDLCK ADVISORY  READ  -1 fe:00:99 0 EOF
2: -> OFDLCK ADVISORY  WRITE -1 fe:00:99 0 EOF
3: FLOCK  ADVISORY  WRITE 42 fe:00:100 0 EOF
4: LEASE  ACTIVE    READ  42 fe:00:101 0 EOF
5: POSIX  ADVISORY  READ  7 00:20:3 100 EOF
6: POSIX  ADVISORY  READ  7 00:20:4 9 9
garbage line
`

func TestParseLocks(t *testing.T) {
	got := ParseLocks(strings.NewReader(procLocks))
	want := []struct {
		class string
		pid   int
		dev   string
		ino   uint64
		desc  string
		wait  bool
		lease bool
	}{
		{"POSIX", 1234, "00:1f", 5678, "a POSIX write lock on bytes 2-5", false, false},
		{"OFDLCK", -1, "fe:00", 99, "an OFD read lock on the whole file", false, false},
		{"OFDLCK", -1, "fe:00", 99, "an OFD write lock on the whole file", true, false},
		{"FLOCK", 42, "fe:00", 100, "an exclusive flock lock", false, false},
		{"LEASE", 42, "fe:00", 101, "a read lease", false, true},
		{"POSIX", 7, "00:20", 3, "a POSIX read lock on bytes 100 to the end", false, false},
		{"POSIX", 7, "00:20", 4, "a POSIX read lock on byte 9", false, false},
	}
	if len(got) != len(want) {
		t.Fatalf("%d locks, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Class != w.class || g.Pid != w.pid || g.Dev != w.dev || g.Ino != w.ino || g.Describe() != w.desc || g.Waiter != w.wait || g.IsLease() != w.lease {
			t.Errorf("lock %d: %+v (%q), want %+v", i, g, g.Describe(), w)
		}
	}
}

func TestFdinfoLocks(t *testing.T) {
	fi, err := ParseFdinfo(strings.NewReader("pos:\t0\nflags:\t02\nmnt_id:\t25\nino:\t77\nlock:\t1: FLOCK  ADVISORY  READ 9 fe:00:77 0 EOF\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := fi.FdLocks()
	if len(l) != 1 || l[0].Describe() != "a shared flock lock" || l[0].Ino != 77 {
		t.Fatalf("%+v", l)
	}
}

func unixDiagMsg(ino uint32, typ, state uint8, attrs ...[]byte) []byte {
	b := make([]byte, 16)
	b[0], b[1], b[2] = 1, typ, state
	binary.NativeEndian.PutUint32(b[4:], ino)
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func rtattr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(b, uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestParseUnixDiag(t *testing.T) {
	peer := make([]byte, 4)
	binary.NativeEndian.PutUint32(peer, 555)
	s, ok := ParseUnixDiag(unixDiagMsg(7, 1, 1, rtattr(unixDiagName, []byte("\x00abs")), rtattr(unixDiagPeer, peer)))
	if !ok || s.Ino != 7 || s.Name != "@abs" || s.Peer != 555 || s.Type != 1 || s.State != 1 {
		t.Fatalf("%+v", s)
	}
	s, ok = ParseUnixDiag(unixDiagMsg(8, 5, 10, rtattr(unixDiagName, []byte("/run/x.sock"))))
	if !ok || s.Name != "/run/x.sock" || s.Peer != 0 || s.State != 10 {
		t.Fatalf("%+v", s)
	}
	if _, ok := ParseUnixDiag([]byte{1, 2, 3}); ok {
		t.Fatal("short message parsed")
	}
	// A listener with two clients waiting, its socket file (kernel dev_t
	// 8:3 is 0x800003), backlog numbers and a shutdown mask.
	u32s := func(v ...uint32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.NativeEndian.PutUint32(b[4*i:], x)
		}
		return b
	}
	s, ok = ParseUnixDiag(unixDiagMsg(9, 1, 10, rtattr(unixDiagName, []byte("/run/l.sock\x00")),
		rtattr(unixDiagVFS, u32s(4242, 8<<20|3)), rtattr(unixDiagIcons, u32s(11, 0)),
		rtattr(unixDiagRqlen, u32s(2, 7)), rtattr(unixDiagShutdown, []byte{3})))
	if !ok || s.Name != "/run/l.sock" || string(s.RawName) != "/run/l.sock\x00" || !s.HasVFS || s.VFSIno != 4242 ||
		s.VFSDev != unix.Mkdev(8, 3) || len(s.Icons) != 2 || s.Icons[0] != 11 || s.Icons[1] != 0 ||
		s.RQueue != 2 || s.WQueue != 7 || s.Shutdown != 3 {
		t.Fatalf("%+v", s)
	}
}

func FuzzParseLocks(f *testing.F) {
	f.Add([]byte(procLocks))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, l := range ParseLocks(bytes.NewReader(data)) {
			_ = l.Describe()
		}
	})
}

func FuzzParseUnixDiag(f *testing.F) {
	f.Add(unixDiagMsg(7, 1, 1, rtattr(unixDiagName, []byte("\x00abs")), rtattr(unixDiagPeer, []byte{1, 2, 3, 4})))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseUnixDiag(data)
		walkNetlink(data, func([]byte) {})
	})
}
