package dump

import (
	"reflect"
	"testing"

	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/progress"
)

type countSink struct{ total, done uint64 }

func (s *countSink) AddTotal(n uint64) { s.total += n }
func (s *countSink) Add(n uint64)      { s.done += n }

// TestProgressBatches: while a bar watches, parasite requests are cut at
// 64 MiB, across and inside ranges; unwatched, they stay whole.
func TestProgressBatches(t *testing.T) {
	const mib = 1 << 20
	in := []parasite.Range{{Addr: 0x1000000, Len: 40 * mib}, {Addr: 0x9000000, Len: 100 * mib}, {Addr: 0x20000000, Len: 4096}}
	d := &dumper{opts: Options{Progress: progress.Discard}}
	if got := d.progressBatches(in); !reflect.DeepEqual(got, [][]parasite.Range{in}) {
		t.Fatalf("unwatched: %v", got)
	}
	d.opts.Progress = &countSink{}
	want := [][]parasite.Range{
		{{Addr: 0x1000000, Len: 40 * mib}, {Addr: 0x9000000, Len: 24 * mib}},
		{{Addr: 0x9000000 + 24*mib, Len: 64 * mib}},
		{{Addr: 0x9000000 + 88*mib, Len: 12 * mib}, {Addr: 0x20000000, Len: 4096}},
	}
	got := d.progressBatches(in)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("batches %v\nwant %v", got, want)
	}
	var pages uint64
	for _, b := range got {
		pages += parasitePages(b)
	}
	if pages != 140*mib/4096+1 {
		t.Fatalf("%d pages in the batches", pages)
	}
}

// TestPageCounter: pages written through counted() reach the Sink; an
// unwatched dump writes straight to the file.
func TestPageCounter(t *testing.T) {
	s := &countSink{}
	d := &dumper{opts: Options{Progress: s}}
	var buf writerFunc = func(p []byte) (int, error) { return len(p), nil }
	w := d.counted(buf)
	w.Write(make([]byte, 3*4096))
	w.Write(make([]byte, 4096))
	if s.done != 4 {
		t.Fatalf("%d pages counted, want 4", s.done)
	}
	d.opts.Progress = progress.Discard
	if _, ok := d.counted(buf).(writerFunc); !ok {
		t.Fatal("an unwatched dump's writer is wrapped")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
