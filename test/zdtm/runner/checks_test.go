package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

const smapsText = `7f0000000000-7f0000002000 rw-p 00000000 00:00 0 
Size:                  8 kB
Rss:                   4 kB
ProtectionKey:         0
VmFlags: rd wr mr mw me ac sd 
7f0000002000-7f0000003000 r--p 00000000 08:01 4242                       /tmp/t/dir with space/f.dat
Size:                  4 kB
ProtectionKey:         0
VmFlags: rd mr mw me dd 
`

func TestParseSmapsFlagsAndKey(t *testing.T) {
	m, err := ParseSmaps(smapsText)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[0].Flags != "rd wr mr mw me ac sd" || m[0].PKey != "0" || m[1].Flags != "rd mr mw me dd" || m[1].Path != "/tmp/t/dir with space/f.dat" {
		t.Fatalf("parsed %+v", m)
	}
	if _, err := ParseSmaps("VmFlags: rd\n"); err == nil || err.Error() != `smaps line 1 "VmFlags: rd": before the first area` {
		t.Errorf("flags before an area: %v", err)
	}
}

func smapsTask(t *testing.T, text string) *Task {
	m, err := ParseSmaps(text)
	if err != nil {
		t.Fatal(err)
	}
	return &Task{PID: 10, Threads: []int{10}, Comm: map[int]string{10: "a"},
		ThreadStatus: map[int]map[string]string{10: {}}, Maps: m}
}

func TestDiffTreesVmFlags(t *testing.T) {
	want := &Tree{Root: 10, Tasks: map[int]*Task{10: smapsTask(t, smapsText)}}
	// Lost madvise(MADV_DONTDUMP): reported with the area.
	lost := &Tree{Root: 10, Tasks: map[int]*Task{10: smapsTask(t, strings.Replace(smapsText, "me dd", "me", 1))}}
	wantD := []string{
		"task 10 maps: lost   7f0000002000-7f0000003000 r--p 0 08:01 4242 vmflags=rd,mr,mw,me,dd pkey=0 /tmp/t/dir with space/f.dat",
		"task 10 maps: gained 7f0000002000-7f0000003000 r--p 0 08:01 4242 vmflags=rd,mr,mw,me pkey=0 /tmp/t/dir with space/f.dat",
	}
	if d := DiffTrees(want, lost, DiffOptions{}); !reflect.DeepEqual(d, wantD) {
		t.Errorf("lost dd:\n%s\nwant\n%s", strings.Join(d, "\n"), strings.Join(wantD, "\n"))
	}
	// A lost protection key is a difference too.
	pk := &Tree{Root: 10, Tasks: map[int]*Task{10: smapsTask(t, strings.Replace(smapsText, "ProtectionKey:         0\nVmFlags: rd mr", "ProtectionKey:         1\nVmFlags: rd mr", 1))}}
	if d := DiffTrees(want, pk, DiffOptions{}); len(d) != 2 || !strings.Contains(d[1], "pkey=1 ") {
		t.Errorf("pkey: %q", d)
	}
	// Allowed: soft-dirty, accounting and userfaultfd registration.
	same := &Tree{Root: 10, Tasks: map[int]*Task{10: smapsTask(t, strings.Replace(smapsText, "rd wr mr mw me ac sd", "rd wr mr mw me uw", 1))}}
	if d := DiffTrees(want, same, DiffOptions{}); len(d) > 0 {
		t.Errorf("allowed flags reported: %q", d)
	}
	// A runtime's anonymous area with flags is still recognised as such.
	if !runtimeAnon("task 1 maps: gained 7f0000000000-7f0000002000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me pkey=0") {
		t.Error("anonymous area with smaps fields not recognised")
	}
	if runtimeAnon("task 1 maps: gained 7f0000000000-7f0000002000 rw-p 0 00:00 0 vmflags=rd,wr,mr,mw,me [stack]") {
		t.Error("[stack] taken for a runtime's area")
	}
}

func statusTask(thread, proc map[string]string) *Tree {
	return &Tree{Root: 10, Tasks: map[int]*Task{10: {PID: 10, Threads: []int{10}, Comm: map[int]string{10: "a"},
		ThreadStatus: map[int]map[string]string{10: thread}, Status: proc}}}
}

func TestDiffTreesStatusSchedOOM(t *testing.T) {
	base := func() (map[string]string, map[string]string) {
		return map[string]string{"State": "S (sleeping)", "policy": "3 (SCHED_BATCH)", "rt_priority": "0", "nice": "3",
				"Cpus_allowed_list": "0-1", "Seccomp": "2", "SigPnd": "0000000000000200"},
			map[string]string{"oom_score_adj": "500", "ShdPnd": "0000000000004000", "loginuid": "4294967295"}
	}
	for name, c := range map[string]struct {
		thread, proc map[string]string
		want         []string
	}{
		"running":  {map[string]string{"State": "R (running)"}, nil, nil},
		"disk":     {map[string]string{"State": "D (disk sleep)"}, nil, nil},
		"stopped":  {map[string]string{"State": "T (stopped)"}, nil, []string{`task 10 thread 10: State "T (stopped)", want "S (sleeping)"`}},
		"policy":   {map[string]string{"policy": "0 (SCHED_OTHER)", "nice": "0"}, nil, []string{`task 10 thread 10: nice "0", want "3"`, `task 10 thread 10: policy "0 (SCHED_OTHER)", want "3 (SCHED_BATCH)"`}},
		"rt":       {map[string]string{"policy": "1 (SCHED_FIFO)", "rt_priority": "10"}, nil, []string{`task 10 thread 10: policy "1 (SCHED_FIFO)", want "3 (SCHED_BATCH)"`, `task 10 thread 10: rt_priority "10", want "0"`}},
		"affinity": {map[string]string{"Cpus_allowed_list": "0"}, nil, []string{`task 10 thread 10: Cpus_allowed_list "0", want "0-1"`}},
		"seccomp":  {map[string]string{"Seccomp": "0"}, nil, []string{`task 10 thread 10: Seccomp "0", want "2"`}},
		"pending":  {map[string]string{"SigPnd": "0000000000000000"}, nil, []string{`task 10 thread 10: SigPnd "0000000000000000", want "0000000000000200"`}},
		"oom":      {nil, map[string]string{"oom_score_adj": "0"}, []string{`task 10: oom_score_adj "0", want "500"`}},
		"shared":   {nil, map[string]string{"ShdPnd": "0000000000000000"}, []string{`task 10: ShdPnd "0000000000000000", want "0000000000004000"`}},
		"loginuid": {nil, map[string]string{"loginuid": "1000"}, []string{`task 10: loginuid "1000", want "4294967295"`}},
	} {
		wt, wp := base()
		gt, gp := base()
		for k, v := range c.thread {
			gt[k] = v
		}
		for k, v := range c.proc {
			gp[k] = v
		}
		if d := DiffTrees(statusTask(wt, wp), statusTask(gt, gp), DiffOptions{}); !reflect.DeepEqual(d, c.want) {
			t.Errorf("%s: got %q, want %q", name, d, c.want)
		}
	}
}

func TestParseSched(t *testing.T) {
	stat := "1235 (zdtm (x)) S 1 1234 1234 0 -1 4194560 106 0 0 0 0 0 0 0 39 19 3 0 98765 2400000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 5 0 0 0"
	got, err := ParseSched(stat)
	want := map[string]string{"policy": "5 (SCHED_IDLE)", "rt_priority": "0", "nice": "19"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %v %v, want %v", got, err, want)
	}
	fifo := strings.Replace(stat, "17 1 0 5 0", "17 1 42 1 0", 1)
	if got, _ := ParseSched(fifo); got["policy"] != "1 (SCHED_FIFO)" || got["rt_priority"] != "42" {
		t.Errorf("fifo: %v", got)
	}
	if _, err := ParseSched("1 (x) S 1 2 3"); err == nil || err.Error() != "stat has 4 fields after comm, want the policy (field 41)" {
		t.Errorf("short stat: %v", err)
	}
}

func TestParseFdinfoExtraLines(t *testing.T) {
	ev := ParseFdinfo("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\neventfd-count:                5\neventfd-id: 3\neventfd-semaphore: 0\n")
	want := FD{Pos: "0", Flags: "02", Ino: "1057", Extra: []string{"eventfd-count: 5", "eventfd-id: 3", "eventfd-semaphore: 0"}}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("eventfd %+v, want %+v", ev, want)
	}
	ep := ParseFdinfo("pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\ntfd:        7 events:       19 data:                7  pos:0 ino:4e0 sdev:e\ntfd:        5 events:        1 data:       ffffffffff  pos:12 ino:2a sdev:fe00\n")
	wantTfd := []string{"tfd: 5 events: 1 data: ffffffffff pos:12", "tfd: 7 events: 19 data: 7 pos:0"}
	if !reflect.DeepEqual(ep.Extra, wantTfd) {
		t.Errorf("epoll %q, want %q", ep.Extra, wantTfd)
	}
}

func TestDiffTreesFdinfo(t *testing.T) {
	tree := func(fds map[int]FD) *Tree {
		return &Tree{Root: 10, Tasks: map[int]*Task{10: {PID: 10, Threads: []int{10}, Comm: map[int]string{10: "a"},
			ThreadStatus: map[int]map[string]string{10: {}}, FDs: fds}}}
	}
	ev := func(count, id string) FD {
		return FD{Target: "anon_inode:[eventfd]", Flags: "02", Pos: "0", Ino: "1057",
			Extra: []string{"eventfd-count: " + count, "eventfd-id: " + id, "eventfd-semaphore: 0"}}
	}
	file := func(ino, pos string) FD { return FD{Target: "/tmp/t/f", Flags: "0100002", Pos: pos, Ino: ino} }
	pipe := func(ino string) FD { return FD{Target: "pipe:[" + ino + "]", Flags: "0", Pos: "0", Ino: ino} }
	want := tree(map[int]FD{3: ev("5", "3"), 4: ev("5", "3"), 5: file("42", "12"), 6: pipe("900"),
		7: {Target: "anon_inode:[eventpoll]", Flags: "02", Pos: "0", Ino: "1057", Extra: []string{"tfd: 6 events: 19 data: 6 pos:0"}}})
	// Allowed: new eventfd id and anonymous inode, new pipe inode.
	same := tree(map[int]FD{3: ev("5", "8"), 4: ev("5", "8"), 5: file("42", "12"), 6: pipe("901"),
		7: {Target: "anon_inode:[eventpoll]", Flags: "02", Pos: "0", Ino: "2000", Extra: []string{"tfd: 6 events: 19 data: 6 pos:0"}}})
	if d := DiffTrees(want, same, DiffOptions{}); len(d) > 0 {
		t.Errorf("allowed differences reported: %q", d)
	}
	for name, c := range map[string]struct {
		fd   int
		f    FD
		want []string
	}{
		"count": {3, ev("6", "3"), []string{
			"task 10 fds: lost   3 anon_inode:[eventfd] flags=02 pos=0; eventfd-count: 5; eventfd eventfd#1; eventfd-semaphore: 0",
			"task 10 fds: gained 3 anon_inode:[eventfd] flags=02 pos=0; eventfd-count: 6; eventfd eventfd#1; eventfd-semaphore: 0"}},
		"unshared": {4, ev("5", "9"), []string{
			"task 10 fds: lost   4 anon_inode:[eventfd] flags=02 pos=0; eventfd-count: 5; eventfd eventfd#1; eventfd-semaphore: 0",
			"task 10 fds: gained 4 anon_inode:[eventfd] flags=02 pos=0; eventfd-count: 5; eventfd eventfd#2; eventfd-semaphore: 0"}},
		"inode": {5, file("43", "12"), []string{
			"task 10 fds: lost   5 /tmp/t/f flags=0100002 pos=12 ino=42",
			"task 10 fds: gained 5 /tmp/t/f flags=0100002 pos=12 ino=43"}},
		"epoll events": {7, FD{Target: "anon_inode:[eventpoll]", Flags: "02", Pos: "0", Ino: "1057", Extra: []string{"tfd: 6 events: 1 data: 6 pos:0"}}, []string{
			"task 10 fds: lost   7 anon_inode:[eventpoll] flags=02 pos=0; tfd: 6 events: 19 data: 6 pos:0",
			"task 10 fds: gained 7 anon_inode:[eventpoll] flags=02 pos=0; tfd: 6 events: 1 data: 6 pos:0"}},
	} {
		fds := map[int]FD{}
		for k, v := range want.Tasks[10].FDs {
			fds[k] = v
		}
		fds[c.fd] = c.f
		if d := DiffTrees(want, tree(fds), DiffOptions{}); !reflect.DeepEqual(d, c.want) {
			t.Errorf("%s: got\n%s\nwant\n%s", name, strings.Join(d, "\n"), strings.Join(c.want, "\n"))
		}
	}
}

// The list of what restore may change is documented word for word in the
// README, between its markers.
func TestAllowancesDocumented(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(b), "<!-- allowances: begin -->\n")
	doc, _, ok2 := strings.Cut(rest, "<!-- allowances: end -->")
	if !ok1 || !ok2 {
		t.Fatal("README.md lacks the allowances markers")
	}
	if want := AllowancesMarkdown(); doc != want {
		t.Errorf("README.md allowances:\n%s\nwant (from allowed.go):\n%s", doc, want)
	}
	for _, f := range []string{"fdinfo mnt_id", "fdinfo ino", "fdinfo eventfd-id", "fdinfo tfd ino sdev", "State R S D I"} {
		if !allowed(f) {
			t.Errorf("%q looked up by the comparisons but not listed", f)
		}
	}
}

func TestSkipReason(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{"SKIP: no 2 MiB huge pages to be had (vm.nr_hugepages 0 + 3): Cannot allocate memory", "no 2 MiB huge pages to be had (vm.nr_hugepages 0 + 3): Cannot allocate memory"},
		{"setting up\nSKIP: first\nSKIP: second", "second"},
		{"", "the test could not set up its state here (no SKIP line)"},
	} {
		if got := skipReason(c.out); got != c.want {
			t.Errorf("skipReason(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}
