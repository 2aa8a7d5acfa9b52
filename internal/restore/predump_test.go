package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/kerndat"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/testproc"
)

// TestMain lets this test binary serve as the memory tracker keeper that
// pre-dumps start (testproc.KeeperArgs).
func TestMain(m *testing.M) {
	testproc.ServeKeeperIfAsked()
	os.Exit(m.Run())
}

// writer is a pagewriter tree under test.
type writer struct {
	t    *testing.T
	root *testproc.Proc
	dir  string
	seq  int
	base map[int]uint64 // area address per PID
	// keepers started by pre-dumps, killed at the end.
	keepers []int
}

const writerPages = 2048 // 8 MiB

func startWriter(t *testing.T) *writer {
	t.Helper()
	// Tasks the final dump kills must not linger as zombies holding
	// their PIDs: reap them ourselves.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	bin := testproc.BuildC(t, "testdata/pagewriter.c")
	w := &writer{t: t, dir: t.TempDir(), base: map[int]uint64{}}
	if d := os.Getenv("GOCKPT_TEST_KEEPDIR"); d != "" {
		w.dir, _ = os.MkdirTemp(d, "writer")
	}
	w.root = testproc.Start(t, bin, w.dir, strconv.Itoa(writerPages))
	w.learn(w.root.Pid)
	t.Cleanup(func() {
		for _, k := range w.keepers {
			syscall.Kill(k, syscall.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(k, &ws, 0, nil)
		}
	})
	return w
}

// learn reads the area address a process announced.
func (w *writer) learn(pid int) {
	w.t.Helper()
	path := filepath.Join(w.dir, fmt.Sprintf("info.%d", pid))
	testproc.WaitFile(w.t, path, 10*time.Second)
	b, _ := os.ReadFile(path)
	var base uint64
	var n int
	if _, err := fmt.Sscanf(string(b), "%x %d", &base, &n); err != nil {
		w.t.Fatalf("info.%d: %q: %v", pid, b, err)
	}
	w.base[pid] = base
}

// do sends commands to pid and returns the extra words of its answer.
func (w *writer) do(pid int, cmds ...string) []string {
	w.t.Helper()
	w.seq++
	body := fmt.Sprintf("%d\n%s\n", w.seq, strings.Join(cmds, "\n"))
	cmd := filepath.Join(w.dir, fmt.Sprintf("cmd.%d", pid))
	if err := os.WriteFile(cmd+".tmp", []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	os.Rename(cmd+".tmp", cmd)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		w.t.Fatalf("signal %d: %v", pid, err)
	}
	ack := filepath.Join(w.dir, fmt.Sprintf("ack.%d", pid))
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(ack)
		f := strings.Fields(string(b))
		if len(f) >= 2 && f[0] == strconv.Itoa(w.seq) {
			if f[1] != "ok" {
				w.t.Fatalf("task %d: %s", pid, b)
			}
			return f[2:]
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("task %d did not answer command %d (%q); last answer %q", pid, w.seq, cmds, b)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fork makes pid fork a child, which answers commands too.
func (w *writer) fork(pid int) int {
	w.t.Helper()
	extra := w.do(pid, "f")
	child, _ := strconv.Atoi(extra[0])
	w.learn(child)
	return child
}

func writes(pages []int, v int) []string {
	var out []string
	for _, p := range pages {
		out = append(out, fmt.Sprintf("w %d %d", p, v))
	}
	return out
}

func pageRange(from, to int) []int {
	var out []int
	for p := from; p < to; p++ {
		out = append(out, p)
	}
	return out
}

// preDump runs a pre-dump into img-N (chained to the previous one).
func (w *writer) preDump(n int, o dump.Options) *dump.Stats {
	w.t.Helper()
	o.Pid = w.root.Pid
	o.ImagesDir = w.img(n)
	o.TrackMem = o.TrackBackend != dump.BackendHashes
	if o.TrackBackend == dump.BackendHashes {
		o.TrackBackend = dump.BackendAuto
	}
	if n > 1 && o.PrevImagesDir == "" {
		o.PrevImagesDir = fmt.Sprintf("../img-%d", n-1)
	}
	o.KeeperArgs = testproc.KeeperArgs()
	st, err := dump.PreDump(o)
	if err != nil {
		w.t.Fatalf("pre-dump %d: %v", n, err)
	}
	if k := w.keeperPid(n); k > 0 {
		w.keepers = append(w.keepers, k)
	}
	return st
}

func (w *writer) keeperPid(n int) int { return keeperPidIn(w.img(n)) }

func (w *writer) img(n int) string { return filepath.Join(w.dir, fmt.Sprintf("img-%d", n)) }

// finalDump dumps (killing the tree) into img-N with --prev-images-dir
// img-(N-1), reaps the killed tasks and returns the stats.
func (w *writer) finalDump(n int, trackMem bool) *dump.Stats {
	w.t.Helper()
	tree := append(testproc.Descendants(w.root.Pid), w.root.Pid)
	st, err := dump.Run(dump.Options{Pid: w.root.Pid, ImagesDir: w.img(n), TrackMem: trackMem, PrevImagesDir: fmt.Sprintf("../img-%d", n-1)})
	if err != nil {
		w.t.Fatalf("dump: %v", err)
	}
	w.root.Cmd.Wait()
	for _, pid := range tree {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("task %d still exists after the dump killed it", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return st
}

// areaPages returns, for the area of pid in images n, the page indexes
// with data in that directory and those left in the parent.
func (w *writer) areaPages(n, pid int) (present, parent []int) {
	w.t.Helper()
	d, err := images.OpenDir(w.img(n))
	if err != nil {
		w.t.Fatal(err)
	}
	f, err := os.Open(d.Join(images.PagemapFile(pid)))
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	_, es, err := pagemap.Parse(f, f.Name())
	if err != nil {
		w.t.Fatal(err)
	}
	base := w.base[pid]
	end := base + writerPages*pagemap.PageSize
	for _, e := range es {
		for a := e.Vaddr; a < e.End(); a += pagemap.PageSize {
			if a < base || a >= end {
				continue
			}
			i := int((a - base) / pagemap.PageSize)
			if e.Flags&pagemap.FlagPresent != 0 {
				present = append(present, i)
			} else if e.Flags&pagemap.FlagParent != 0 {
				parent = append(parent, i)
			}
		}
	}
	return present, parent
}

func (w *writer) expectPresent(n, pid int, want []int, what string) {
	w.t.Helper()
	got, _ := w.areaPages(n, pid)
	sort.Ints(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		w.t.Fatalf("%s: images %d, task %d: pages with data %v, want exactly %v", what, n, pid, got, want)
	}
}

// restoreAndVerify restores img-N and has every task check its pages.
func (w *writer) restoreAndVerify(n int, pids ...int) {
	w.t.Helper()
	res, err := Run(Options{ImagesDir: w.img(n)})
	if err != nil {
		w.t.Fatalf("restore: %v", err)
	}
	w.t.Cleanup(func() {
		testproc.KillTree(res.RootPid)
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
	})
	for _, pid := range pids {
		w.do(pid, "v")
	}
}

func needTracker(t *testing.T, b dump.Backend) {
	for _, w := range kerndat.DirtyTrackers() {
		if dump.Backend(w) == b {
			return
		}
	}
	t.Skipf("memory tracker %s does not work on this kernel", b)
}

// TestPreDumpExactPages: between pre-dumps the program writes a known set
// of pages; each iteration holds exactly those (the tracker loses none and
// adds none in the area), a page dropped with MADV_DONTNEED is a hole, and
// the restored program finds every page as last written.
func TestPreDumpExactPages(t *testing.T) {
	needTracker(t, dump.BackendUffdWP)
	w := startWriter(t)
	pid := w.root.Pid
	st := w.preDump(1, dump.Options{})
	w.expectPresent(1, pid, pageRange(0, writerPages), "first pre-dump")
	if st.PagesSkippedParent != 0 {
		t.Fatalf("first pre-dump left %d pages in a parent it does not have", st.PagesSkippedParent)
	}

	setA := append(pageRange(100, 140), 5, 1999, 2047)
	w.do(pid, writes(setA, 2)...)
	st = w.preDump(2, dump.Options{})
	w.expectPresent(2, pid, setA, "second pre-dump")
	if st.PagesSkippedParent < writerPages-uint64(len(setA)) {
		t.Fatalf("second pre-dump left %d pages in the parent, want at least %d", st.PagesSkippedParent, writerPages-len(setA))
	}

	setB := append(pageRange(1500, 1510), 7, 100)
	w.do(pid, append(writes(setB, 3), "d 50", "d 120")...)
	st = w.finalDump(3, true)
	w.expectPresent(3, pid, setB, "final dump")
	_, parent := w.areaPages(3, pid)
	for _, p := range parent {
		if p == 50 || p == 120 {
			t.Fatalf("page %d was dropped with MADV_DONTNEED but the final dump takes it from the parent", p)
		}
	}
	if len(parent) != writerPages-len(setB)-2 {
		t.Fatalf("final dump left %d pages of the area in the parent, want %d", len(parent), writerPages-len(setB)-2)
	}
	t.Logf("final dump: %d pages written, %d left in the parent", st.PagesWritten, st.PagesSkippedParent)
	w.restoreAndVerify(3, pid)
}

// TestPreDumpTreeAndFork: a tree of processes; a child forked between
// pre-dumps is new (all its pages dirty), the others stay exact.
func TestPreDumpTreeAndFork(t *testing.T) {
	needTracker(t, dump.BackendUffdWP)
	w := startWriter(t)
	root := w.root.Pid
	c1 := w.fork(root)
	w.do(c1, writes(pageRange(0, 10), 4)...)
	w.preDump(1, dump.Options{})
	w.expectPresent(1, c1, pageRange(0, writerPages), "first pre-dump, child")

	c2 := w.fork(root) // forked after the first pre-dump
	w.do(c1, writes([]int{11, 12}, 5)...)
	w.do(c2, writes([]int{13}, 6)...)
	w.do(root, writes([]int{14}, 7)...)
	w.preDump(2, dump.Options{})
	w.expectPresent(2, root, []int{14}, "second pre-dump, root")
	w.expectPresent(2, c1, []int{11, 12}, "second pre-dump, old child")
	w.expectPresent(2, c2, pageRange(0, writerPages), "second pre-dump, new child")

	w.do(c2, writes([]int{20}, 8)...)
	w.do(c1, writes([]int{21}, 9)...)
	w.finalDump(3, true)
	w.expectPresent(3, root, nil, "final dump, root")
	w.expectPresent(3, c1, []int{21}, "final dump, old child")
	w.expectPresent(3, c2, []int{20}, "final dump, new child")
	w.restoreAndVerify(3, root, c1, c2)
}

// TestPreDumpBrokenTracking breaks tracking on purpose; every time the
// result must be all dirty where the tracker cannot vouch, and correct.
func TestPreDumpBrokenTracking(t *testing.T) {
	needTracker(t, dump.BackendUffdWP)
	t.Run("keeper killed", func(t *testing.T) {
		// The keeper holds the only reference to the userfaultfd: killing
		// it is the userfaultfd closed.
		w := startWriter(t)
		pid := w.root.Pid
		w.preDump(1, dump.Options{})
		k := w.keeperPid(1)
		syscall.Kill(k, syscall.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(k, &ws, 0, nil)
		w.do(pid, writes([]int{3}, 2)...)
		w.finalDump(2, true)
		w.expectPresent(2, pid, pageRange(0, writerPages), "final dump after the keeper died")
		w.restoreAndVerify(2, pid)
	})
	t.Run("area remapped", func(t *testing.T) {
		w := startWriter(t)
		pid := w.root.Pid
		w.preDump(1, dump.Options{})
		// Pages 200-263 become a new mapping (splitting the area): the
		// tracker does not cover it or the two pieces left of the old one.
		w.do(pid, "r 200 64 3")
		w.finalDump(2, true)
		w.expectPresent(2, pid, pageRange(0, writerPages), "final dump after a remap")
		w.restoreAndVerify(2, pid)
	})
	t.Run("skipped iteration", func(t *testing.T) {
		// A dump against the first pre-dump after a second one re-armed
		// the trackers cannot trust them.
		w := startWriter(t)
		pid := w.root.Pid
		w.preDump(1, dump.Options{})
		w.do(pid, writes([]int{9}, 2)...)
		w.preDump(2, dump.Options{})
		w.do(pid, writes([]int{10}, 3)...)
		if _, err := dump.Run(dump.Options{Pid: pid, ImagesDir: w.img(3), TrackMem: true, PrevImagesDir: "../img-1", LeaveRunning: true}); err != nil {
			t.Fatal(err)
		}
		w.expectPresent(3, pid, pageRange(0, writerPages), "dump against an older pre-dump")
		w.do(pid, "v")
	})
}

// TestPreDumpHashes: without --track-mem pages are compared by content.
func TestPreDumpHashes(t *testing.T) {
	w := startWriter(t)
	pid := w.root.Pid
	w.preDump(1, dump.Options{TrackBackend: dump.BackendHashes})
	set := []int{1, 2, 3, 700}
	// Page 4 is rewritten with the same content: not a change.
	w.do(pid, append(writes(set, 2), "w 4 1")...)
	w.preDump(2, dump.Options{TrackBackend: dump.BackendHashes})
	w.expectPresent(2, pid, set, "second pre-dump by hashes")
	w.do(pid, append(writes([]int{800}, 5), "d 1")...)
	w.finalDump(3, false)
	w.expectPresent(3, pid, []int{800}, "final dump by hashes")
	w.restoreAndVerify(3, pid)
}

// TestPreDumpRefusedRestore: a pre-dump directory is not restorable.
func TestPreDumpRefusedRestore(t *testing.T) {
	w := startWriter(t)
	w.preDump(1, dump.Options{TrackBackend: dump.BackendHashes})
	_, err := Run(Options{ImagesDir: w.img(1)})
	if err == nil || !strings.Contains(err.Error(), "pre-dump") {
		t.Fatalf("restore of a pre-dump: %v", err)
	}
	// The image tools read it: its tree, its files listed plainly.
	d, err := images.OpenDir(w.img(1))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := images.Summarize(d, files.Describe)
	if err != nil || len(sum.Tasks) != 1 || int(sum.Tasks[0].PID) != w.root.Pid || sum.Tasks[0].Pages.Present == 0 {
		t.Fatalf("summary of a pre-dump: %+v, %v", sum, err)
	}
	files, err := images.List(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Err != nil {
			t.Errorf("image ls: %s: %v", f.Name, f.Err)
		}
	}
	w.do(w.root.Pid, "v")
}

// TestPreDumpWhileForking: the target forks a short-lived child all the
// time; pre-dumps and the final dump catch it in any state, and the
// restored tree goes on with its memory right.
func TestPreDumpWhileForking(t *testing.T) {
	needTracker(t, dump.BackendUffdWP)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	tg := startTarget(t, "testdata/forker.c")
	base := filepath.Dir(tg.imgs)
	var keepers []int
	t.Cleanup(func() {
		for _, k := range keepers {
			syscall.Kill(k, syscall.SIGKILL)
		}
	})
	for i := 1; i <= 3; i++ {
		o := dump.Options{Pid: tg.pid, ImagesDir: filepath.Join(base, fmt.Sprintf("pre%d", i)), TrackMem: true, KeeperArgs: testproc.KeeperArgs()}
		if i > 1 {
			o.PrevImagesDir = fmt.Sprintf("../pre%d", i-1)
		}
		st, err := dump.PreDump(o)
		if err != nil {
			t.Fatalf("pre-dump %d: %v", i, err)
		}
		t.Logf("pre-dump %d: %d tasks, %d pages written, %d in the parent", i, st.Tasks, st.PagesWritten, st.PagesSkippedParent)
		if k := keeperPidIn(o.ImagesDir); k > 0 {
			keepers = append(keepers, k)
		}
		time.Sleep(30 * time.Millisecond)
	}
	tree := append(testproc.Descendants(tg.pid), tg.pid)
	if _, err := dump.Run(dump.Options{Pid: tg.pid, ImagesDir: tg.imgs, TrackMem: true, PrevImagesDir: "../pre3"}); err != nil {
		t.Fatal(err)
	}
	tg.proc.Cmd.Wait()
	for _, pid := range tree {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Children forked after the list above were dumped and killed too;
	// orphaned, they are ours (subreaper) to reap.
	reapSession(tg.pid)
	tg.restore(t)
	tg.expectProgress(t)
}

// reapSession reaps the dead members of session sid that became our
// children as orphans.
func reapSession(sid int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := proc.ReadStat(pid)
		if err == nil && st.Session == sid && st.PPid == os.Getpid() {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	}
}

// keeperPidIn reads the keeper's PID from a pre-dump's track file.
func keeperPidIn(img string) int {
	b, err := os.ReadFile(filepath.Join(img, dump.TrackFile))
	if err != nil {
		return 0
	}
	i := strings.Index(string(b), `"keeper_pid": `)
	if i < 0 {
		return 0
	}
	var pid int
	fmt.Sscanf(string(b[i+len(`"keeper_pid": `):]), "%d", &pid)
	return pid
}

// TestPreDumpAcrossExec: the target execs between pre-dumps. Same PID and
// start time, but a new address space the old tracker knows nothing of:
// the next pre-dump finds out, counts every page dirty and arms a new
// tracker, which the iteration after it trusts again.
func TestPreDumpAcrossExec(t *testing.T) {
	needTracker(t, dump.BackendUffdWP)
	tg := startTarget(t, "testdata/execer.c")
	base := filepath.Dir(tg.imgs)
	var keepers []int
	t.Cleanup(func() {
		for _, k := range keepers {
			syscall.Kill(k, syscall.SIGKILL)
		}
	})
	preDump := func(i int) *dump.Stats {
		o := dump.Options{Pid: tg.pid, ImagesDir: filepath.Join(base, fmt.Sprintf("pre%d", i)), TrackMem: true, KeeperArgs: testproc.KeeperArgs()}
		if i > 1 {
			o.PrevImagesDir = fmt.Sprintf("../pre%d", i-1)
		}
		st, err := dump.PreDump(o)
		if err != nil {
			t.Fatalf("pre-dump %d: %v", i, err)
		}
		if k := keeperPidIn(o.ImagesDir); k > 0 {
			keepers = append(keepers, k)
		}
		t.Logf("pre-dump %d: %d pages written, %d in the parent", i, st.PagesWritten, st.PagesSkippedParent)
		return st
	}
	preDump(1)
	os.WriteFile(filepath.Join(tg.dir, "go"), nil, 0o600)
	testproc.WaitFile(t, filepath.Join(tg.dir, "ready2"), 10*time.Second)
	if st := preDump(2); st.PagesWritten < 2048 {
		t.Fatalf("after exec the pre-dump wrote %d pages: the new 2048-page area must be all dirty", st.PagesWritten)
	}
	time.Sleep(20 * time.Millisecond)
	if st := preDump(3); st.PagesWritten > 1024 {
		t.Fatalf("the iteration after exec wrote %d pages: the new tracker was not armed or not trusted", st.PagesWritten)
	}
	if _, err := dump.Run(dump.Options{Pid: tg.pid, ImagesDir: tg.imgs, TrackMem: true, PrevImagesDir: "../pre3"}); err != nil {
		t.Fatal(err)
	}
	tg.proc.Cmd.Wait()
	waitGone(t, tg.pid)
	tg.restore(t)
	tg.expectProgress(t)
}
