package images

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	pb "github.com/gockpt/gockpt/proto"
)

// testDescribe stands in for files.Describe (which imports this package):
// it names regular files, pipes and eventfds as that does, so these tests see the
// fds listed in order with what the describer said.
func testDescribe(f *pb.FileEntry) string {
	switch f.GetType() {
	case pb.FdTypes_REG:
		return f.GetReg().GetName()
	case pb.FdTypes_PIPE:
		return fmt.Sprintf("pipe:[%d]", f.GetPipe().GetPipeId())
	case pb.FdTypes_EVENTFD:
		return fmt.Sprintf("eventfd counter %d", f.GetEfd().GetCounter())
	}
	return ""
}

func TestFixtureSummary(t *testing.T) {
	d, err := OpenDir(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(d, testDescribe)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tasks) != 1 {
		t.Fatalf("%d tasks, want 1", len(s.Tasks))
	}
	task := s.Tasks[0]
	if task.PID != 12833 || task.PPID != 0 || task.Comm != "counter" || len(task.Threads) != 1 || task.Threads[0] != 12833 {
		t.Errorf("task %+v", task)
	}
	if task.Pages.Present != 286 || task.Pages.Parent != 0 {
		t.Errorf("pages %+v, want 286 present", task.Pages)
	}
	// counter.c maps 1 MiB anonymous, private, read-write; the kernel may
	// merge it with malloc's neighbouring mapping, so look for a VMA that
	// can hold it.
	found := false
	for _, v := range task.VMAs {
		if v.End-v.Start >= 1<<20 && v.Prot == 3 && v.Flags == 0x22 && v.File == "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no anonymous rw VMA of at least 1 MiB among %+v", task.VMAs)
	}
	var log *FDSummary
	for i, f := range task.FDs {
		if f.Desc == "/tmp/gockpt-testdata/counter.log" {
			log = &task.FDs[i]
		}
	}
	if log == nil || log.FD != 3 || log.Kind != "REG" {
		t.Errorf("log file fd: %+v in %+v", log, task.FDs)
	}
	var out bytes.Buffer
	if err := s.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"task 12833 (counter) ppid 0 pgid 12833 sid 12833 Alive\n",
		"  pages: 286 present, 0 in parent, 0 lazy\n",
		"    00007f523ffff000-00007f5240203000 rw-    2064K MAP_PRIVATE | MAP_ANON  VMA_AREA_REGULAR | VMA_ANON_PRIVATE\n",
		"  /usr/lib/x86_64-linux-gnu/libc.so.6\n",
		"      3 REG      /tmp/gockpt-testdata/counter.log\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFixtureList(t *testing.T) {
	d, err := OpenDir(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	files, err := List(d)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]FileInfo{}
	for _, f := range files {
		if f.Err != nil {
			t.Errorf("%s: %v", f.Name, f.Err)
		}
		got[f.Name] = f
	}
	for name, want := range map[string]FileInfo{
		"inventory.img":     {Kind: "INVENTORY", Entries: 1},
		"pagemap-12833.img": {Kind: "PAGEMAP", Entries: 15},
		"files.img":         {Kind: "FILES", Entries: 10},
		"pages-1.img":       {Kind: "PAGES", Entries: -1},
		"stats-dump":        {Kind: "STATS", Entries: 1},
	} {
		if g := got[name]; g.Kind != want.Kind || g.Entries != want.Entries {
			t.Errorf("%s: %+v, want %+v", name, g, want)
		}
	}
}
