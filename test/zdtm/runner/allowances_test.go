package main

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func oneTask(fds map[int]FD, maps []Mapping) *Tree {
	return &Tree{Root: 10, Tasks: map[int]*Task{10: {PID: 10, Threads: []int{10}, Comm: map[int]string{10: "a"},
		ThreadStatus: map[int]map[string]string{10: {}}, FDs: fds, Maps: maps}}}
}

func checkDiff(t *testing.T, name string, want, got *Tree, opt DiffOptions, diff []string) {
	t.Helper()
	if d := DiffTrees(want, got, opt); !reflect.DeepEqual(d, diff) {
		t.Errorf("%s: got\n%s\nwant\n%s", name, strings.Join(d, "\n"), strings.Join(diff, "\n"))
	}
}

func TestDiffTreesProcInode(t *testing.T) {
	proc := func(path, ino string) FD { return FD{Target: path, Flags: "0100000", Pos: "10", Ino: ino} }
	want := oneTask(map[int]FD{3: proc("/proc/11/status", "10796998"), 4: proc("/tmp/t/f", "42")}, nil)
	checkDiff(t, "reopened /proc file", want,
		oneTask(map[int]FD{3: proc("/proc/11/status", "10797868"), 4: proc("/tmp/t/f", "42")}, nil), DiffOptions{}, nil)
	checkDiff(t, "regular file", want,
		oneTask(map[int]FD{3: proc("/proc/11/status", "10797868"), 4: proc("/tmp/t/f", "43")}, nil), DiffOptions{}, []string{
			"task 10 fds: lost   4 /tmp/t/f flags=0100000 pos=10 ino=42",
			"task 10 fds: gained 4 /tmp/t/f flags=0100000 pos=10 ino=43"})
	checkDiff(t, "/proc file position", want,
		oneTask(map[int]FD{3: {Target: "/proc/11/status", Flags: "0100000", Pos: "0", Ino: "1"}, 4: proc("/tmp/t/f", "42")}, nil), DiffOptions{}, []string{
			"task 10 fds: lost   3 /proc/11/status flags=0100000 pos=10",
			"task 10 fds: gained 3 /proc/11/status flags=0100000 pos=0"})
	// A file whose name only starts like /proc keeps its inode compared.
	checkDiff(t, "/procfoo", oneTask(map[int]FD{3: proc("/procfoo/x", "5")}, nil),
		oneTask(map[int]FD{3: proc("/procfoo/x", "6")}, nil), DiffOptions{}, []string{
			"task 10 fds: lost   3 /procfoo/x flags=0100000 pos=10 ino=5",
			"task 10 fds: gained 3 /procfoo/x flags=0100000 pos=10 ino=6"})
}

func TestDiffTreesGuardSpread(t *testing.T) {
	area := func(start, end uint64, flags string) Mapping {
		return Mapping{Start: start, End: end, Perms: "rw-p", Dev: "00:00", Flags: flags}
	}
	const (
		plain = "rd wr mr mw me"
		gu    = "rd wr mr mw me gu"
	)
	before := []Mapping{area(0x1000, 0x3000, gu), area(0x3000, 0x4000, plain), area(0x8000, 0x9000, plain)}
	for name, c := range map[string]struct {
		after []Mapping
		diff  []string
	}{
		"merged, gu spread": {[]Mapping{area(0x1000, 0x4000, gu), area(0x8000, 0x9000, plain)}, nil},
		"kept apart":        {before, nil},
		"gu lost": {[]Mapping{area(0x1000, 0x4000, plain), area(0x8000, 0x9000, plain)}, []string{
			"task 10 maps: lost   1000-3000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,gu ",
			"task 10 maps: lost   3000-4000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me ",
			"task 10 maps: gained 1000-4000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me "}},
		"gu gained without a merge": {[]Mapping{area(0x1000, 0x3000, gu), area(0x3000, 0x4000, plain), area(0x8000, 0x9000, gu)}, []string{
			"task 10 maps: lost   8000-9000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me ",
			"task 10 maps: gained 8000-9000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,gu "}},
		"merged with another flag changed": {[]Mapping{area(0x1000, 0x4000, "rd wr mr mw me dd gu"), area(0x8000, 0x9000, plain)}, []string{
			"task 10 maps: lost   1000-3000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,gu ",
			"task 10 maps: lost   3000-4000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me ",
			"task 10 maps: gained 1000-4000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,dd,gu "}},
		"merged past the neighbour": {[]Mapping{area(0x1000, 0x5000, gu), area(0x8000, 0x9000, plain)}, []string{
			"task 10 maps: lost   1000-3000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,gu ",
			"task 10 maps: lost   3000-4000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me ",
			"task 10 maps: gained 1000-5000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,gu "}},
	} {
		checkDiff(t, name, oneTask(nil, before), oneTask(nil, c.after), DiffOptions{}, c.diff)
	}
	// Neighbours of another protection are not merged into a gu area.
	ro := area(0x3000, 0x4000, "rd mr mw me")
	ro.Perms = "r--p"
	checkDiff(t, "other protection", oneTask(nil, []Mapping{area(0x1000, 0x3000, gu), ro}),
		oneTask(nil, []Mapping{area(0x1000, 0x4000, gu)}), DiffOptions{}, []string{
			"task 10 maps: lost   1000-3000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,gu ",
			"task 10 maps: lost   3000-4000 r--p 0 00:00 0 vmflags=rd,mr,mw,me ",
			"task 10 maps: gained 1000-4000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me,gu "})
}

func TestDiffTreesEpollClosedTargets(t *testing.T) {
	pipe := func(ino string) FD { return FD{Target: "pipe:[" + ino + "]", Flags: "0", Pos: "0", Ino: ino} }
	// holders: the fds on the file of pipe ino (both sides: 10x before, 20x after).
	holders := map[string][]int{"64": {5}, "65": {9, 601}, "66": {12}, "c8": {5}, "c9": {9, 601}, "ca": {12}}
	tfd := func(fd int, data, ino string) Tfd {
		return Tfd{Line: "tfd: " + itoa(fd) + " events: 19 data: " + data + " pos:0", FD: fd, Holders: holders[ino]}
	}
	epoll := func(ts ...Tfd) FD {
		f := FD{Target: "anon_inode:[eventpoll]", Flags: "02", Pos: "0", Ino: "1057", Tfds: ts}
		for _, t := range ts {
			f.Extra = append(f.Extra, t.Line)
		}
		return f
	}
	// Before: pipe 100 (fd 5) was added as 600 and closed there, pipe 101
	// (fds 9 and 601) was added as 601, pipe 102 (fd 12) as 602, now an
	// eventfd.
	evfd := FD{Target: "anon_inode:[eventfd]", Flags: "02", Pos: "0", Ino: "1057", Extra: []string{"eventfd-count: 1", "eventfd-semaphore: 0"}}
	before := oneTask(map[int]FD{3: epoll(tfd(600, "1000", "64"), tfd(601, "1002", "65"), tfd(602, "1003", "66")),
		5: pipe("100"), 9: pipe("101"), 601: pipe("101"), 12: pipe("102"), 602: evfd}, nil)
	after := func(ts ...Tfd) *Tree {
		return oneTask(map[int]FD{3: epoll(ts...), 5: pipe("200"), 9: pipe("201"), 601: pipe("201"), 12: pipe("202"), 602: evfd}, nil)
	}
	checkDiff(t, "registered under the holders", before, after(tfd(5, "1000", "c8"), tfd(601, "1002", "c9"), tfd(12, "1003", "ca")), DiffOptions{}, nil)
	checkDiff(t, "data changed", before, after(tfd(5, "1000", "c8"), tfd(601, "1002", "c9"), tfd(12, "1004", "ca")), DiffOptions{}, []string{
		"task 10 fds: lost   3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: (not open on its file before) events: 19 data: 1003 pos:0; tfd: 601 events: 19 data: 1002 pos:0",
		"task 10 fds: gained 3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: (not open on its file before) events: 19 data: 1004 pos:0; tfd: 601 events: 19 data: 1002 pos:0"})
	const kept = "task 10 fds: lost   3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: (not open on its file before) events: 19 data: 1003 pos:0; tfd: 601 events: 19 data: 1002 pos:0"
	checkDiff(t, "a kept number moved", before, after(tfd(5, "1000", "c8"), tfd(9, "1002", "c9"), tfd(12, "1003", "ca")), DiffOptions{}, []string{
		kept,
		"task 10 fds: gained 3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: (not open on its file before) events: 19 data: 1002 pos:0; tfd: (not open on its file before) events: 19 data: 1003 pos:0"})
	checkDiff(t, "a target lost", before, after(tfd(5, "1000", "c8"), tfd(601, "1002", "c9")), DiffOptions{}, []string{
		"task 10 fds: lost   3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: (not open on its file before) events: 19 data: 1003 pos:0; tfd: 601 events: 19 data: 1002 pos:0",
		"task 10 fds: gained 3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: 601 events: 19 data: 1002 pos:0"})
	// Every number held its file: compared exactly, as before.
	exact := oneTask(map[int]FD{3: epoll(tfd(9, "1002", "65")), 9: pipe("101"), 601: pipe("101")}, nil)
	checkDiff(t, "no closed target", exact, oneTask(map[int]FD{3: epoll(tfd(601, "1002", "c9")), 9: pipe("201"), 601: pipe("201")}, nil), DiffOptions{}, []string{
		"task 10 fds: lost   3 anon_inode:[eventpoll] flags=02 pos=0; tfd: 9 events: 19 data: 1002 pos:0",
		"task 10 fds: gained 3 anon_inode:[eventpoll] flags=02 pos=0; tfd: 601 events: 19 data: 1002 pos:0"})

	// After CRIU's dump, a target may come back under another fd of its file.
	crit := DiffOptions{CRIUDumped: true}
	checkDiff(t, "criu-dump, another holder", before, after(tfd(5, "1000", "c8"), tfd(9, "1002", "c9"), tfd(12, "1003", "ca")), crit, nil)
	checkDiff(t, "criu-dump, same number", before, after(tfd(5, "1000", "c8"), tfd(601, "1002", "c9"), tfd(12, "1003", "ca")), crit, nil)
	checkDiff(t, "criu-dump, not a holder", before, after(tfd(5, "1000", "c8"), tfd(12, "1002", "c9"), tfd(12, "1003", "ca")), crit, []string{
		"task 10 fds: lost   3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: (not open on its file before) events: 19 data: 1003 pos:0; tfd: one of 9 601 events: 19 data: 1002 pos:0",
		"task 10 fds: gained 3 anon_inode:[eventpoll] flags=02 pos=0; tfd: (not open on its file before) events: 19 data: 1000 pos:0; tfd: (not open on its file before) events: 19 data: 1002 pos:0; tfd: (not open on its file before) events: 19 data: 1003 pos:0"})
}

func itoa(n int) string { return intLines([]int{n})[0] }

func TestParseFdinfoTfdIdentity(t *testing.T) {
	ep := ParseFdinfo("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\ntfd:      600 events:       19 data:             1000  pos:0 ino:4e0 sdev:e\n")
	want := []Tfd{{Line: "tfd: 600 events: 19 data: 1000 pos:0", FD: 600}}
	if !reflect.DeepEqual(ep.Tfds, want) {
		t.Errorf("tfds %+v, want %+v", ep.Tfds, want)
	}
}

// The fds that hold an epoll target's file are found in a real process:
// the dup of the watched read end, not the write end (the same inode) nor
// another pipe; two targets added under one number are told apart.
func TestEpollHoldersLive(t *testing.T) {
	pipe := func() [2]int {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
		return p
	}
	a, b := pipe(), pipe()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(ep) })
	// Number n is first a's read end, then b's: both added under n.
	n, err := unix.FcntlInt(uintptr(a[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(n) })
	for i, p := range [][2]int{a, b} {
		if err := unix.Dup3(p[0], n, unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, n, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}); err != nil {
			t.Fatal(err)
		}
	}
	task, err := collectTask(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]int{}
	for _, tf := range task.FDs[ep].Tfds {
		if tf.FD != n {
			t.Errorf("target %+v, want added under %d", tf, n)
		}
		got[tf.Line] = tf.Holders
	}
	want := map[string][]int{
		"tfd: " + itoa(n) + " events: 19 data: 0 pos:0": {a[0]},
		"tfd: " + itoa(n) + " events: 19 data: 1 pos:0": {b[0], n},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("holders %v, want %v", got, want)
	}
}
