package main

import (
	"reflect"
	"strings"
	"testing"
)

const mapsBefore = `55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1311 /tmp/t/a.out
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1311 /tmp/t/a.out
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000002000 rw-p 7f0000000 00:00 0
7f0000002000-7f0000004000 rw-p 7f0000002 00:00 0
7f0000004000-7f0000005000 ---p 00000000 00:00 0
7f1000000000-7f1000001000 rw-p 00000000 08:01 4242                       /tmp/t/dir with space/f.dat
7f2000000000-7f2000001000 rw-s 00000000 08:01 777                        /tmp/t/ghost.dat (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7ffd10000000-7ffd10004000 r--p 00000000 00:00 0                          [vvar]
7ffd10004000-7ffd10006000 r--p 00000000 00:00 0                          [vvar_vclock]
7ffd10006000-7ffd10008000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`

// The same address space as a restore may show it: the anonymous area in one
// piece with another pgoff, the ghost file under a new inode, and the vDSO
// block moved as a whole.
const mapsAfter = `55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 1311 /tmp/t/a.out
55d0c0a01000-55d0c0a02000 r-xp 00001000 08:01 1311 /tmp/t/a.out
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000004000 rw-p 00000000 00:00 0
7f0000004000-7f0000005000 ---p 00000000 00:00 0
7f1000000000-7f1000001000 rw-p 00000000 08:01 4242                       /tmp/t/dir with space/f.dat
7f2000000000-7f2000001000 rw-s 00000000 08:01 999                        /tmp/t/ghost.dat (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7ffe20000000-7ffe20004000 r--p 00000000 00:00 0                          [vvar]
7ffe20004000-7ffe20006000 r--p 00000000 00:00 0                          [vvar_vclock]
7ffe20006000-7ffe20008000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`

func mustMaps(t *testing.T, s string) []Mapping {
	t.Helper()
	m, err := ParseMaps(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseMapsKeepsPathsWithSpaces(t *testing.T) {
	m := mustMaps(t, mapsBefore)
	if len(m) != 13 {
		t.Fatalf("%d mappings, want 13", len(m))
	}
	if got := m[6].Path; got != "/tmp/t/dir with space/f.dat" {
		t.Errorf("path %q", got)
	}
	if m[6].Inode != 4242 || m[6].Dev != "08:01" || m[6].Perms != "rw-p" {
		t.Errorf("mapping %+v", m[6])
	}
	if m[12].Start != 0xffffffffff600000 || m[12].Path != "[vsyscall]" {
		t.Errorf("vsyscall %+v", m[12])
	}
	if m[3].Path != "" || m[3].Offset != 0x7f0000000 {
		t.Errorf("anonymous %+v", m[3])
	}
}

func TestParseMapsRejectsGarbage(t *testing.T) {
	for _, bad := range []string{"zzz r--p 0 0:0 0", "1000-2000 r--p", "1000-2000 r--p 0 00:00 x"} {
		if _, err := ParseMaps(bad); err == nil {
			t.Errorf("ParseMaps(%q) succeeded", bad)
		}
	}
}

func TestNormalizeMapsEqualAcrossRestore(t *testing.T) {
	a, b := NormalizeMaps(mustMaps(t, mapsBefore)), NormalizeMaps(mustMaps(t, mapsAfter))
	if d := DiffLines("maps", a, b); len(d) > 0 {
		t.Fatalf("normalised maps differ:\n%s", strings.Join(d, "\n"))
	}
	want := []string{
		"vdso-block +0 size 4000 r--p [vvar]",
		"vdso-block +4000 size 2000 r--p [vvar_vclock]",
		"vdso-block +6000 size 2000 r-xp [vdso]",
	}
	if got := a[len(a)-3:]; !reflect.DeepEqual(got, want) {
		t.Errorf("vdso block %q, want %q", got, want)
	}
}

func TestNormalizeMapsSeesRealDifferences(t *testing.T) {
	base := NormalizeMaps(mustMaps(t, mapsBefore))
	for name, edit := range map[string][2]string{
		"protection":      {"7f0000004000-7f0000005000 ---p", "7f0000004000-7f0000005000 r--p"},
		"address":         {"7f1000000000-7f1000001000", "7f1000001000-7f1000002000"},
		"size":            {"7ffd00000000-7ffd00021000", "7ffd00000000-7ffd00022000"},
		"file":            {"1311 /tmp/t/a.out\n55d0c0a01000", "1312 /tmp/t/a.out\n55d0c0a01000"},
		"file offset":     {"r-xp 00001000 08:01 1311", "r-xp 00002000 08:01 1311"},
		"vdso size":       {"7ffd10006000-7ffd10008000 r-xp", "7ffd10006000-7ffd10009000 r-xp"},
		"vdso layout":     {"7ffd10004000-7ffd10006000 r--p 00000000 00:00 0                          [vvar_vclock]", "7ffd10005000-7ffd10007000 r--p 00000000 00:00 0                          [vvar_vclock]"},
		"lost mapping":    {"7f1000000000-7f1000001000 rw-p 00000000 08:01 4242                       /tmp/t/dir with space/f.dat\n", ""},
		"shared->private": {"rw-s 00000000 08:01 777", "rw-p 00000000 08:01 777"},
	} {
		changed := strings.Replace(mapsBefore, edit[0], edit[1], 1)
		if changed == mapsBefore {
			t.Fatalf("%s: edit did not apply", name)
		}
		if d := DiffLines("maps", base, NormalizeMaps(mustMaps(t, changed))); len(d) == 0 {
			t.Errorf("%s: change not seen", name)
		}
	}
}

func TestMergeAdjacentFileNeedsContiguousOffsets(t *testing.T) {
	m := mustMaps(t, `1000-2000 r--p 00000000 08:01 5 /f
2000-3000 r--p 00005000 08:01 5 /f
3000-4000 r--p 00006000 08:01 5 /f
`)
	got := mergeAdjacent(m)
	if len(got) != 2 || got[1].Start != 0x2000 || got[1].End != 0x4000 {
		t.Errorf("merged to %v", got)
	}
}

func TestNormalizeFDsComparesKindsAndSharing(t *testing.T) {
	before := map[int]map[int]FD{
		10: {0: {Target: "/dev/null", Flags: "0100000", Pos: "0"}, 3: {Target: "pipe:[100]"}, 4: {Target: "pipe:[100]"}, 5: {Target: "/tmp/f", Flags: "02", Pos: "12"}},
		11: {3: {Target: "pipe:[100]"}, 7: {Target: "socket:[55]"}},
	}
	after := map[int]map[int]FD{
		10: {0: {Target: "/dev/null", Flags: "0100000", Pos: "0"}, 3: {Target: "pipe:[900]", Pos: "7"}, 4: {Target: "pipe:[900]"}, 5: {Target: "/tmp/f", Flags: "02", Pos: "12"}},
		11: {3: {Target: "pipe:[900]"}, 7: {Target: "socket:[56]"}},
	}
	a, b := NormalizeFDs(before), NormalizeFDs(after)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("normalised fds differ:\n%v\n%v", a, b)
	}
	if a[11][0] != "3 pipe#1 flags= pos=-" {
		t.Errorf("line %q", a[11][0])
	}
	// Two pipes where there was one shared pipe is a difference.
	after[11][3] = FD{Target: "pipe:[901]"}
	if reflect.DeepEqual(a, NormalizeFDs(after)) {
		t.Error("a pipe no longer shared between tasks was not noticed")
	}
	after[11][3] = FD{Target: "pipe:[900]"}
	// A file offset or flag change is a difference; a different fd number too.
	for _, f := range []FD{{Target: "/tmp/f", Flags: "02", Pos: "13"}, {Target: "/tmp/f", Flags: "02000002", Pos: "12"}, {Target: "/tmp/g", Flags: "02", Pos: "12"}} {
		after[10][5] = f
		if reflect.DeepEqual(a, NormalizeFDs(after)) {
			t.Errorf("change to %+v not noticed", f)
		}
	}
	after[10][5] = before[10][5]
	delete(after[10], 5)
	after[10][6] = before[10][5]
	if reflect.DeepEqual(a, NormalizeFDs(after)) {
		t.Error("fd renumbering not noticed")
	}
}

func TestDiffLinesMultiset(t *testing.T) {
	d := DiffLines("x", []string{"a", "a", "b"}, []string{"a", "b", "c"})
	want := []string{"x: lost   a", "x: gained c"}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got %q, want %q", d, want)
	}
	if d := DiffLines("x", []string{"a", "b"}, []string{"b", "a"}); d != nil {
		t.Errorf("order should not matter: %q", d)
	}
}

func TestParseStatWithSpacesInComm(t *testing.T) {
	stat := "1234 (zdtm main) comm) S 1 1234 1234 0 -1 4194560 106 0 0 0 0 0 0 0 20 0 1 0 98765 2400000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
	ppid, pgid, sid, start, state, err := ParseStat(stat)
	if err != nil || ppid != 1 || pgid != 1234 || sid != 1234 || start != 98765 || state != 'S' {
		t.Errorf("got %d %d %d %d %c %v", ppid, pgid, sid, start, state, err)
	}
	if _, _, _, _, _, err := ParseStat("1234 (x) S 1"); err == nil {
		t.Error("short stat accepted")
	}
}

func TestParseStatusAndFdinfo(t *testing.T) {
	st := ParseStatus("Name:\tx\nUid:\t65534\t65534\t65534\t65534\nSigBlk:\t0000000000000200\nGroups:\t100 4242 65534 \n", []string{"Uid", "Groups", "SigBlk"})
	want := map[string]string{"Uid": "65534 65534 65534 65534", "Groups": "100 4242 65534", "SigBlk": "0000000000000200"}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status %v", st)
	}
	fd := ParseFdinfo("pos:\t4096\nflags:\t0100002\nmnt_id:\t30\nino:\t12\n")
	if want := (FD{Pos: "4096", Flags: "0100002", Ino: "12"}); !reflect.DeepEqual(fd, want) {
		t.Errorf("fdinfo %+v, want %+v", fd, want)
	}
}

func TestDiffTreesReportsTaskChanges(t *testing.T) {
	task := func() *Task {
		return &Task{PID: 10, PPID: 1, PGID: 10, SID: 10, Threads: []int{10, 11},
			Comm: map[int]string{10: "a", 11: "b"}, ThreadStatus: map[int]map[string]string{10: {"SigBlk": "0"}, 11: {"SigBlk": "1"}},
			Status: map[string]string{"Uid": "0 0 0 0"}, Maps: mustMaps(t, mapsBefore), FDs: map[int]FD{0: {Target: "/dev/null"}}}
	}
	want := &Tree{Root: 10, Tasks: map[int]*Task{10: task()}}
	same := &Tree{Root: 10, Tasks: map[int]*Task{10: task()}}
	same.Tasks[10].PPID = 99 // the root's parent may change
	same.Tasks[10].Maps = mustMaps(t, mapsAfter)
	if d := DiffTrees(want, same, DiffOptions{}); len(d) > 0 {
		t.Fatalf("equal trees differ: %q", d)
	}
	for name, edit := range map[string]func(*Task){
		"thread":  func(t *Task) { t.Threads = []int{10} },
		"comm":    func(t *Task) { t.Comm[11] = "c" },
		"sigmask": func(t *Task) { t.ThreadStatus[11]["SigBlk"] = "2" },
		"uid":     func(t *Task) { t.Status["Uid"] = "1 1 1 1" },
		"pgid":    func(t *Task) { t.PGID = 5 },
		"cwd":     func(t *Task) { t.Cwd = "/elsewhere" },
		"fd":      func(t *Task) { t.FDs[1] = FD{Target: "/dev/null"} },
	} {
		got := &Tree{Root: 10, Tasks: map[int]*Task{10: task()}}
		edit(got.Tasks[10])
		if d := DiffTrees(want, got, DiffOptions{}); len(d) == 0 {
			t.Errorf("%s change not reported", name)
		}
	}
	extra := &Tree{Root: 10, Tasks: map[int]*Task{10: task(), 12: {PID: 12, PPID: 10}}}
	if d := DiffTrees(want, extra, DiffOptions{}); len(d) != 1 || !strings.Contains(d[0], "gained 12") {
		t.Errorf("extra task: %q", d)
	}
}

func TestJudge(t *testing.T) {
	for out, ok := range map[string]bool{
		"PASS":                         true,
		"# 12 reads\nPASS\n":           true,
		"FAIL: x differs":              false,
		"PASS\nFAIL: late":             false,
		"":                             false,
		"PASSED":                       false,
		"FAIL: thread 3: TLS\nPASS\n":  false,
		"# note\nsome noise\nPASS\n\n": true,
	} {
		if got := Judge(out) == ""; got != ok {
			t.Errorf("Judge(%q) pass=%v, want %v", out, got, ok)
		}
	}
}

func TestDiffTreesDynamicThreads(t *testing.T) {
	mk := func(tids ...int) *Tree {
		task := &Task{PID: 10, Threads: tids, Comm: map[int]string{}, ThreadStatus: map[int]map[string]string{}}
		for _, tid := range tids {
			task.Comm[tid] = "go"
		}
		return &Tree{Root: 10, Tasks: map[int]*Task{10: task}}
	}
	dyn := DiffOptions{DynamicThreads: true}
	if d := DiffTrees(mk(10, 11), mk(10, 11, 12), dyn); len(d) > 0 {
		t.Errorf("a new runtime thread reported: %q", d)
	}
	if d := DiffTrees(mk(10, 11), mk(10, 11, 12), DiffOptions{}); len(d) != 1 {
		t.Errorf("without DynamicThreads: %q", d)
	}
	if d := DiffTrees(mk(10, 11, 12), mk(10, 12), dyn); len(d) != 1 || !strings.Contains(d[0], "lost   11") {
		t.Errorf("a lost thread: %q", d)
	}
	// A runtime thread caught blocking every signal while it starts another.
	sig := func(tr *Tree, tid int, mask string) *Tree {
		tr.Tasks[10].ThreadStatus[tid] = map[string]string{"SigBlk": mask}
		return tr
	}
	if d := DiffTrees(sig(mk(10, 11), 11, allBlocked), sig(mk(10, 11), 11, "0000000000000000"), dyn); len(d) > 0 {
		t.Errorf("a transient all-blocked mask reported: %q", d)
	}
	if d := DiffTrees(sig(mk(10, 11), 11, "0000000000000000"), sig(mk(10, 11), 11, allBlocked), dyn); len(d) > 0 {
		t.Errorf("a transient all-blocked mask after reported: %q", d)
	}
	want := `task 10 thread 11: SigBlk "0000000000000000", want "fffffffffffbfeff"`
	if d := DiffTrees(sig(mk(10, 11), 11, allBlocked), sig(mk(10, 11), 11, "0000000000000000"), DiffOptions{}); len(d) != 1 || d[0] != want {
		t.Errorf("without DynamicThreads: %q, want %q", d, want)
	}
	if d := DiffTrees(sig(mk(10, 11), 11, "0000000000000200"), sig(mk(10, 11), 11, "0000000000000000"), dyn); len(d) != 1 {
		t.Errorf("a changed mask in a dynamic-threads test: %q", d)
	}
}

func TestRuntimeAnon(t *testing.T) {
	for d, want := range map[string]bool{
		"task 1 maps: gained 7f6d43b20000-7f6d43b22000 rw-p 0 00:00 0":           true,
		"task 1 maps: lost 7f6d43b20000-7f6d43b22000 rw-p 0 00:00 0":             true,
		"task 1 maps: lost 6d108c00000-6d10c000000 ---p 0 00:00 0":               true,
		"task 1 maps: gained 7f6d43b20000-7f6d43b22000 r--p 0 00:00 0":           false,
		"task 1 maps: gained 7f6d43b20000-7f6d43b22000 rw-p 0 fe:00 12 /a/file":  false,
		"task 1 maps: gained 7f6d43b20000-7f6d43b22000 rw-s 0 00:01 5 /dev/zero": false,
	} {
		if got := runtimeAnon(d); got != want {
			t.Errorf("runtimeAnon(%q) = %v, want %v", d, got, want)
		}
	}
}
