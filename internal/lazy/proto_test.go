package lazy

import (
	"bytes"
	"strings"
	"testing"
)

func TestTaskMessage(t *testing.T) {
	runs := []Run{{0x1000, 0x2000}, {0x5000, 0x1000}}
	b := encodeTask(42, runs)
	pid, n, err := decodeHeader(b[:taskHeader])
	if err != nil || pid != 42 || n != 2 {
		t.Fatalf("header: %d %d %v", pid, n, err)
	}
	got, err := readRuns(bytes.NewReader(b[taskHeader:]), pid, n)
	if err != nil || len(got) != 2 || got[0] != runs[0] || got[1] != runs[1] {
		t.Fatalf("runs %v, %v", got, err)
	}
	for _, c := range []struct {
		b   []byte
		err string
	}{
		{append([]byte{1, 2, 3, 4}, b[4:taskHeader]...), "bad magic 0x4030201: the peer is not gockpt restore"},
		{encodeTask(0, runs)[:taskHeader], "task 0: 2 runs"},
		{encodeTask(7, []Run{{0x1001, 0x1000}}), "task 7: run 0x1001+0x1000 is not page-aligned, empty, or out of order"},
		{encodeTask(7, []Run{{0x3000, 0x1000}, {0x1000, 0x1000}}), "task 7: run 0x1000+0x1000 is not page-aligned, empty, or out of order"},
		{encodeTask(7, []Run{{0x1000, 0}}), "is not page-aligned, empty, or out of order"},
		{encodeTask(7, []Run{{0xfffffffffffff000, 0x2000}}), "is not page-aligned, empty, or out of order"},
	} {
		pid, n, err := decodeHeader(c.b[:taskHeader])
		if err == nil {
			_, err = readRuns(bytes.NewReader(c.b[taskHeader:]), pid, n)
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%x: %v, want %q", c.b, err, c.err)
		}
	}
}

// FuzzTaskMessage: restore's messages never crash the daemon, and what
// it accepts is page-aligned and sorted.
func FuzzTaskMessage(f *testing.F) {
	f.Add(encodeTask(42, []Run{{0x1000, 0x2000}}))
	f.Add(encodeTask(0, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < taskHeader {
			return
		}
		pid, n, err := decodeHeader(b[:taskHeader])
		if err != nil {
			return
		}
		runs, err := readRuns(bytes.NewReader(b[taskHeader:]), pid, n)
		if err != nil {
			return
		}
		var end uint64
		for _, r := range runs {
			if r.Start%pageSize != 0 || r.Len%pageSize != 0 || r.Len == 0 || r.Start < end || r.End() < r.Start {
				t.Fatalf("accepted run %+v", r)
			}
			end = r.End()
		}
	})
}

func TestSegs(t *testing.T) {
	var s segs
	s.add([]seg{{0x1000, 0x5000, 0x1000}, {0x8000, 0x9000, 0x8000}})
	if got := s.cut(0x2000, 0x3000); len(got) != 1 || got[0] != (seg{0x2000, 0x3000, 0x2000}) {
		t.Fatalf("cut: %v", got)
	}
	if s.pages() != 4 {
		t.Fatalf("pages %d, want 4", s.pages())
	}
	s.move(0x3000, 0x20000, 0x2000) // the part 0x3000-0x5000 moves
	want := segs{{0x1000, 0x2000, 0x1000}, {0x8000, 0x9000, 0x8000}, {0x20000, 0x22000, 0x3000}}
	if len(s) != len(want) {
		t.Fatalf("after move: %v, want %v", s, want)
	}
	for i := range want {
		if s[i] != want[i] {
			t.Fatalf("after move: %v, want %v", s, want)
		}
	}
	if i := s.find(0x21000); i != 2 {
		t.Fatalf("find: %d", i)
	}
	if i := s.find(0x3000); i != -1 {
		t.Fatalf("find in a moved-away range: %d", i)
	}
}
