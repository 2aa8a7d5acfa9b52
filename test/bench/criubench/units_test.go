package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSelect(t *testing.T) {
	quick, err := Select(Workloads, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(quick), "mem-4MiB tree-10 threads-64 fds-10000 vmas-1000"; got != want {
		t.Errorf("-quick selects %q, want %q", got, want)
	}
	some, err := Select(Workloads, `tree-100$|mem-1GiB`, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(some), "mem-1GiB tree-100"; got != want {
		t.Errorf("-only selects %q, want %q", got, want)
	}
	all, err := Select(Workloads, "", false)
	if err != nil || len(all) != 13 {
		t.Errorf("no -only: %d workloads, %v; want 13", len(all), err)
	}
	_, err = Select(Workloads, "(", false)
	if got, want := err.Error(), "-only \"(\": error parsing regexp: missing closing ): `(`"; got != want {
		t.Errorf("bad regexp: %q, want %q", got, want)
	}
	_, err = Select(Workloads, "mem-4GiB", true)
	if got := err.Error(); !strings.HasPrefix(got, `no workload matches -only "mem-4GiB" (workloads: mem-4MiB mem-256MiB `) {
		t.Errorf("no match: %q", got)
	}
}

func TestWorkloadCounts(t *testing.T) {
	for _, c := range []struct {
		name           string
		tasks, threads int
		ok             int64
		args           string
	}{
		{"mem-4GiB", 1, 1, 1 << 20, "mem 4096 R S"},
		{"tree-1000", 1000, 1, 256, "tree 1000 R S"},
		{"threads-1024", 1, 1024, 1023, "threads 1024 R S"},
		{"fds-10000", 1, 1, 10000, "fds 10000 R S"},
		{"vmas-1000", 1, 1, 1000, "vmas 1000 R S"},
	} {
		ws, err := Select(Workloads, "^"+c.name+"$", false)
		if err != nil {
			t.Fatal(err)
		}
		w := ws[0]
		if w.Tasks() != c.tasks || w.Threads() != c.threads || w.WantOK() != c.ok {
			t.Errorf("%s: %d tasks, %d threads, %d intact; want %d, %d, %d", c.name,
				w.Tasks(), w.Threads(), w.WantOK(), c.tasks, c.threads, c.ok)
		}
		if got := strings.Join(w.Args("R", "S"), " "); got != c.args {
			t.Errorf("%s: args %q, want %q", c.name, got, c.args)
		}
	}
}

func TestParseState(t *testing.T) {
	got, err := ParseState("0 1 00000000000000ff 256\n3 1 0000000000000abc 256\n2 1 0000")
	if err != nil {
		t.Fatal(err)
	}
	want := []TaskState{{0, 1, "00000000000000ff", 256}, {3, 1, "0000000000000abc", 256}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if Complete(got, 3, 1) {
		t.Error("3 tasks complete with tasks 0 and 3 answering")
	}
	got = append(got, TaskState{1, 1, "aa", 256}, TaskState{2, 1, "bb", 256})
	if Complete(got, 4, 2) {
		t.Error("round 2 complete with round 1 lines")
	}
	if !Complete(got, 4, 1) {
		t.Error("4 tasks not complete with tasks 0-3 answering")
	}
	_, err = ParseState("0 1 ff\n")
	if got, want := err.Error(), `state line 1 "0 1 ff": want 4 fields`; got != want {
		t.Errorf("short line: %q, want %q", got, want)
	}
	_, err = ParseState("0 1 ff x\n")
	if got, want := err.Error(), `state line 1 "0 1 ff x": not IDX ROUND SUM OK`; got != want {
		t.Errorf("bad line: %q, want %q", got, want)
	}
}

func TestCheckStates(t *testing.T) {
	tree := Workload{Name: "tree-3", Family: FamilyTree, Mode: "tree", N: 3}
	before := []TaskState{{2, 1, "c", 256}, {0, 1, "a", 256}, {1, 1, "b", 256}}
	if err := CheckIntact(tree, before); err != nil {
		t.Errorf("intact: %v", err)
	}
	if err := CheckIntact(tree, []TaskState{{0, 1, "a", 256}, {1, 1, "b", 255}}); err == nil || err.Error() != "task 1: 255 of 256 pages intact" {
		t.Errorf("one page lost: %v", err)
	}
	fds := Workload{Name: "fds-2", Mode: "fds", N: 2}
	if err := CheckIntact(fds, []TaskState{{0, 1, "a", 1}}); err == nil || err.Error() != "task 0: 1 of 2 fds intact" {
		t.Errorf("one fd lost: %v", err)
	}
	after := []TaskState{{0, 2, "a", 256}, {1, 2, "b", 256}, {2, 2, "c", 256}}
	if err := CheckSame(before, after); err != nil {
		t.Errorf("same state: %v", err)
	}
	for _, c := range []struct {
		after []TaskState
		want  string
	}{
		{[]TaskState{{0, 2, "a", 256}, {1, 2, "x", 256}, {2, 2, "c", 256}},
			"task 1: checksum x (256 intact) after the restore, b (256 intact) before the dump"},
		{[]TaskState{{0, 2, "a", 256}, {1, 3, "b", 256}, {2, 2, "c", 256}},
			"task 1: round 3 after the restore, want 2"},
		{[]TaskState{{0, 2, "a", 256}},
			"task 1: did not answer after the restore"},
		{[]TaskState{{0, 2, "a", 256}, {1, 2, "b", 256}, {2, 2, "c", 256}, {7, 2, "d", 256}},
			"task 7: not there before the dump"},
	} {
		err := CheckSame(before, c.after)
		if err == nil || err.Error() != c.want {
			t.Errorf("CheckSame(%v) = %v, want %q", c.after, err, c.want)
		}
	}
}

func TestProcParsers(t *testing.T) {
	pids, err := ParseChildren("12 345 6789 ")
	if err != nil || !reflect.DeepEqual(pids, []int{12, 345, 6789}) {
		t.Errorf("children: %v, %v", pids, err)
	}
	if pids, err := ParseChildren(""); err != nil || len(pids) != 0 {
		t.Errorf("no children: %v, %v", pids, err)
	}
	if _, err := ParseChildren("12 x"); err == nil || err.Error() != `children "12 x": "x" is not a PID` {
		t.Errorf("bad children: %v", err)
	}
	st, err := ParseStatState("42 (a (b) c) Z 1 42 42 0 -1")
	if err != nil || st != 'Z' {
		t.Errorf("stat state %q, %v; want Z", st, err)
	}
	if _, err := ParseStatState("42 (abc"); err == nil || err.Error() != `stat "42 (abc": no state after the command name` {
		t.Errorf("bad stat: %v", err)
	}
}

func TestMedians(t *testing.T) {
	for _, c := range []struct {
		in   []int64
		want int64
	}{{nil, 0}, {[]int64{5}, 5}, {[]int64{9, 1, 5}, 5}, {[]int64{4, 1, 3, 2}, 2}} {
		if got := MedianInt(c.in); got != c.want {
			t.Errorf("MedianInt(%v) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := MedianDuration([]time.Duration{3 * time.Second, time.Second, 2 * time.Second}); got != 2*time.Second {
		t.Errorf("MedianDuration = %v", got)
	}
}

func sampleResults() (Results, []Workload) {
	ws := []Workload{
		{Name: "mem-4MiB", Family: FamilyMemory, Mode: "mem", N: 4},
		{Name: "mem-256MiB", Family: FamilyMemory, Mode: "mem", N: 256},
		{Name: "tree-10", Family: FamilyTree, Mode: "tree", N: 10},
	}
	ok := func(d, r float64) Sample {
		return Sample{Dump: time.Duration(d * float64(time.Second)), Restore: time.Duration(r * float64(time.Second)),
			DumpRSS: 20 << 10, RestoreRSS: 30 << 10, ImageBytes: 4 << 20}
	}
	res := Results{
		{"tmpfs", "mem-4MiB", "gockpt"}:   {ok(0.1, 0.2), ok(0.3, 0.4), ok(0.2, 0.3)},
		{"tmpfs", "mem-4MiB", "CRIU"}:     {ok(0.2, 0.2), ok(0.2, 0.2), ok(0.2, 0.2)},
		{"tmpfs", "mem-256MiB", "gockpt"}: {ok(1, 2), {Dump: time.Second, DumpRSS: 20 << 10, RestoreErr: "restored wrong: task 0: round 3 after the restore, want 2"}},
		{"tmpfs", "mem-256MiB", "CRIU"}:   {ok(2, 1), ok(2, 1)},
		{"tmpfs", "tree-10", "gockpt"}:    {{DumpErr: "gockpt dump: exit status 1: Error: boom", RestoreErr: "not reached"}},
		{"tmpfs", "tree-10", "CRIU"}:      {ok(0.5, 0.5)},
	}
	return res, ws
}

func TestWriteTable(t *testing.T) {
	res, ws := sampleResults()
	var b bytes.Buffer
	WriteTable(&b, res, []string{"tmpfs", "disk"}, ws, "gockpt", "CRIU")
	want := `| storage | workload | dump gockpt | dump CRIU | dump ratio | restore gockpt | restore CRIU | restore ratio | dump RSS MiB gockpt / CRIU | restore RSS MiB gockpt / CRIU | images MiB gockpt / CRIU |
|---|---|---|---|---|---|---|---|---|---|---|
| tmpfs | mem-4MiB | 0.200 s | 0.200 s | 1.00x | 0.300 s | 0.200 s | 1.50x | 20 / 20 | 30 / 30 | 4.0 / 4.0 |
| tmpfs | mem-256MiB | 1.000 s | 2.000 s | 0.50x | 2.000 s (1/2 FAIL) | 1.000 s | 2.00x | 20 / 20 | 30 / 30 | 2.0 / 4.0 |
| tmpfs | tree-10 | FAIL | 0.500 s | - | FAIL | 0.500 s | - | - / 20 | - / 30 | - / 4.0 |

Failures (the first of each cell):

- tmpfs mem-256MiB, gockpt restore: restored wrong: task 0: round 3 after the restore, want 2
- tmpfs tree-10, gockpt dump: gockpt dump: exit status 1: Error: boom
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWritePNG(t *testing.T) {
	res, ws := sampleResults()
	for _, c := range []struct {
		fam  Family
		want []string
	}{
		{FamilyMemory, []string{"gockpt dump 2", "CRIU dump 2", "gockpt restore 2", "CRIU restore 2"}},
		{FamilyTree, []string{"gockpt dump 0", "CRIU dump 1", "gockpt restore 0", "CRIU restore 1"}},
	} {
		var got []string
		for _, s := range PanelSeries(res, "tmpfs", c.fam, ws, []string{"gockpt", "CRIU"}) {
			got = append(got, fmt.Sprintf("%s %d", s.Label, len(s.Points)))
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s series %v, want %v", c.fam, got, c.want)
		}
	}
	path := filepath.Join(t.TempDir(), "b.png")
	ok, err := WritePNG(path, res, []string{"tmpfs", "disk"}, ws, []string{"gockpt", "CRIU"})
	if err != nil || !ok {
		t.Fatalf("WritePNG: %v, %v", ok, err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("%s is not a PNG (%v)", path, err)
	}
	ok, err = WritePNG(path, Results{}, []string{"disk"}, ws, []string{"gockpt", "CRIU"})
	if err != nil || ok {
		t.Errorf("no points: WritePNG = %v, %v; want false, nil", ok, err)
	}
}

func TestLogTicks(t *testing.T) {
	var got []string
	for _, tk := range (logTicks{}).Ticks(0.03, 0.5) {
		if tk.Label != "" {
			got = append(got, tk.Label)
		}
	}
	if want := []string{"0.05", "0.1", "0.2", "0.5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("labels in [0.03, 0.5]: %v, want %v", got, want)
	}
	got = nil
	for _, tk := range (logTicks{}).Ticks(1000, 4096) {
		got = append(got, tk.Label)
	}
	if want := []string{"1000", "2000", "", ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("ticks in [1000, 4096]: %q, want %q", got, want)
	}
}

func TestFlags(t *testing.T) {
	c, err := parseFlags([]string{"-quick"})
	if err != nil || c.reps != 1 || c.storage != "both" || c.png != "bench-criu.png" {
		t.Errorf("-quick: %+v, %v", c, err)
	}
	if c, err = parseFlags([]string{"-quick", "-reps", "2"}); err != nil || c.reps != 2 {
		t.Errorf("-quick -reps 2: reps %d, %v", c.reps, err)
	}
	if _, err = parseFlags([]string{"-reps", "0"}); err == nil || err.Error() != "-reps 0: want at least 1" {
		t.Errorf("-reps 0: %v", err)
	}
	if _, err = Storages("ssd"); err == nil || err.Error() != `-storage "ssd": want tmpfs, disk or both` {
		t.Errorf("-storage ssd: %v", err)
	}
	if s, err := Storages("both"); err != nil || !reflect.DeepEqual(s, []string{"tmpfs", "disk"}) {
		t.Errorf("-storage both: %v, %v", s, err)
	}
}
