package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/testproc"
)

// fileLSM records like lsm.Recorder, but the label write restore injects
// goes to a plain file, so the test sees it happen with SELinux inactive.
type fileLSM struct {
	*lsm.Recorder
	path string
}

func (f fileLSM) ProcessLabelWrite(label string) (lsm.LabelWrite, error) {
	f.Recorder.ProcessLabelWrite(label)
	return lsm.LabelWrite{Path: f.path, Data: []byte(label)}, nil
}

// TestLabelBeforeThreads: the task's label is written from inside its main
// thread before any other thread exists (SELinux lets only single-threaded
// tasks change context).
func TestLabelBeforeThreads(t *testing.T) {
	const label = "system_u:system_r:gockpt_test_t:s0"
	tg := dumpLabelled(t, label)
	out := filepath.Join(t.TempDir(), "attr-current")
	os.WriteFile(out, nil, 0o666)
	rec := &lsm.Recorder{}
	res, err := Run(Options{ImagesDir: tg.imgs, LSM: fileLSM{rec, out}, Trace: rec.Mark})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testproc.KillTree(res.RootPid)
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
	})
	tg.expectProgress(t)
	if b, _ := os.ReadFile(out); string(b) != label {
		t.Fatalf("label written from the task: %q, want %q", b, label)
	}
	calls := rec.Calls()
	write, firstClone := -1, -1
	for i, c := range calls {
		if c == fmt.Sprintf("ProcessLabelWrite(%q)", label) && write < 0 {
			write = i
		}
		if strings.HasPrefix(c, "clone thread") && firstClone < 0 {
			firstClone = i
		}
	}
	if write < 0 || firstClone < 0 || write > firstClone {
		t.Fatalf("label write must precede every thread clone; calls:\n%s", rec)
	}
	if !strings.HasPrefix(calls[write+1], "label "+label+" set") {
		t.Fatalf("the label was not written right after it was asked for; calls:\n%s", rec)
	}
}

func threadsOf(pid int) []int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, e := range ents {
		var tid int
		fmt.Sscan(e.Name(), &tid)
		if tid != pid {
			out = append(out, tid)
		}
	}
	return out
}

// dumpLabelled dumps the threads program as if every thread had label.
func dumpLabelled(t *testing.T, label string) *target {
	tg := startTarget(t, "testdata/threads.c")
	labels := map[int]string{}
	for _, tid := range append(threadsOf(tg.pid), tg.pid) {
		labels[tid] = label
	}
	tree := append(testproc.Descendants(tg.pid), tg.pid)
	if _, err := dump.Run(dump.Options{Pid: tg.pid, ImagesDir: tg.imgs, LSM: &lsm.Recorder{Labels: labels}}); err != nil {
		t.Fatal(err)
	}
	tg.proc.Cmd.Wait()
	for _, pid := range tree {
		waitGone(t, pid)
	}
	return tg
}

// TestLabelAlreadySet: a task that has its label already (inherited from
// gockpt) is not written again: SELinux may forbid even that transition
// (unconfined_t has no dyntransition to itself; seen on Debian's policy).
func TestLabelAlreadySet(t *testing.T) {
	const label = "unconfined_u:unconfined_r:unconfined_t:s0"
	tg := dumpLabelled(t, label)
	out := filepath.Join(t.TempDir(), "attr-current")
	rec := &lsm.Recorder{Labels: map[int]string{tg.pid: label}}
	res, err := Run(Options{ImagesDir: tg.imgs, LSM: fileLSM{rec, out}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testproc.KillTree(res.RootPid)
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
	})
	tg.expectProgress(t)
	for _, c := range rec.Calls() {
		if strings.HasPrefix(c, "ProcessLabelWrite") {
			t.Fatalf("label written although the task had it; calls:\n%s", rec)
		}
	}
}
