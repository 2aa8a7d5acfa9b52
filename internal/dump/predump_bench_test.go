package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/testproc"
)

// rewritePermille is how much of its memory the pre-dump benchmark's
// process rewrites per second, in thousandths: 2 %/s, 5243 pages/s of
// 1 GiB.
const rewritePermille = 20

// preDumpPause is the time the benchmark lets the process run between
// iterations of the chain.
const preDumpPause = time.Second

// BenchmarkPreDump1GiB measures what pre-dumps buy: a process with 1 GiB of
// touched anonymous memory that rewrites 2 % of its pages per second
// (testdata/rewriter.c) is dumped, each round and in the same run,
//
//   - in full with LeaveRunning: the baseline;
//   - as a chain: pre-dump 1, a second's pause, pre-dump 2 (parent pre1),
//     a second's pause, the final dump (parent pre2, LeaveRunning).
//
// Sub-benchmarks: tracker=<the kernel tracker TrackMem picks here> and
// tracker=hashes (no TrackMem: pages compared by content), for comparison.
// Images go to tmpfs. Medians over the rounds are reported: frozen times in
// ms, bytes of page data written in MB (10^6 bytes), final/full ratios
// (frozen_ratio's target is <= 0.15), and the final dump's pages left in
// the parent. The first call of each sub-benchmark (b.N = 1) warms up.
func BenchmarkPreDump1GiB(b *testing.B) {
	bin := testproc.BuildC(b, "testdata/rewriter.c")
	dir := b.TempDir()
	p := testproc.Start(b, bin, dir, fmt.Sprint(benchMiB), fmt.Sprint(rewritePermille))
	waitRewriter(b, dir)
	images := tmpfsDir(b)
	kernel, err := chooseBackend(true, BackendAuto)
	if err != nil {
		b.Fatal(err)
	}
	for _, backend := range []Backend{kernel, BackendHashes} {
		b.Run("tracker="+string(backend), func(b *testing.B) {
			benchPreDumpChain(b, p.Pid, images, backend)
		})
	}
}

// waitRewriter waits until the rewriter's memory is touched.
func waitRewriter(b *testing.B, dir string) {
	ready := filepath.Join(dir, "ready")
	testproc.WaitFile(b, ready, 60*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for { // ready is written with stdio: wait for its content
		raw, _ := os.ReadFile(ready)
		var addr uint64
		if n, _ := fmt.Sscanf(string(raw), "%x", &addr); n == 1 && addr != 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %q", ready, raw)
		}
		time.Sleep(time.Millisecond)
	}
}

// chainRound is what one round measured.
type chainRound struct {
	fullFrozen, pre1Frozen, pre2Frozen, finalFrozen time.Duration
	fullPages, pre1Pages, pre2Pages, finalPages     uint64
	finalParent                                     uint64
	finalScan, finalCopy                            time.Duration
}

func benchPreDumpChain(b *testing.B, pid int, root string, backend Backend) {
	var rounds []chainRound
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rounds = append(rounds, preDumpRound(b, pid, filepath.Join(root, fmt.Sprint(i)), backend))
	}
	b.StopTimer()
	med := func(f func(r chainRound) float64) float64 {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	mb := func(pages uint64) float64 { return float64(pages*4096) / 1e6 }
	b.ReportMetric(med(func(r chainRound) float64 { return ms(r.fullFrozen) }), "full_frozen_ms")
	b.ReportMetric(med(func(r chainRound) float64 { return ms(r.finalFrozen) }), "final_frozen_ms")
	b.ReportMetric(med(func(r chainRound) float64 { return r.finalFrozen.Seconds() / r.fullFrozen.Seconds() }), "frozen_ratio")
	b.ReportMetric(med(func(r chainRound) float64 { return mb(r.fullPages) }), "full_MB")
	b.ReportMetric(med(func(r chainRound) float64 { return mb(r.finalPages) }), "final_MB")
	b.ReportMetric(med(func(r chainRound) float64 { return float64(r.finalPages) / float64(r.fullPages) }), "bytes_ratio")
	b.ReportMetric(med(func(r chainRound) float64 { return ms(r.pre1Frozen) }), "predump1_frozen_ms")
	b.ReportMetric(med(func(r chainRound) float64 { return ms(r.pre2Frozen) }), "predump2_frozen_ms")
	b.ReportMetric(med(func(r chainRound) float64 { return mb(r.pre1Pages) }), "predump1_MB")
	b.ReportMetric(med(func(r chainRound) float64 { return mb(r.pre2Pages) }), "predump2_MB")
	b.ReportMetric(med(func(r chainRound) float64 { return float64(r.finalParent) }), "final_parent_pages")
	b.ReportMetric(med(func(r chainRound) float64 { return ms(r.finalScan) }), "final_scan_ms")
	b.ReportMetric(med(func(r chainRound) float64 { return ms(r.finalCopy) }), "final_copy_ms")
	for i, r := range rounds {
		b.Logf("b.N=%d round %d: full %v %d pages; pre1 %v %d; pre2 %v %d; final %v %d pages, %d in the parent",
			b.N, i, r.fullFrozen, r.fullPages, r.pre1Frozen, r.pre1Pages, r.pre2Frozen, r.pre2Pages, r.finalFrozen, r.finalPages, r.finalParent)
	}
}

// preDumpRound runs the baseline and the chain once, in dir (removed
// afterwards). Every keeper a pre-dump started is gone when it returns,
// whatever happened.
func preDumpRound(b *testing.B, pid int, dir string, backend Backend) chainRound {
	var r chainRound
	defer os.RemoveAll(dir)
	trackMem := backend != BackendHashes

	st, err := Run(Options{Pid: pid, ImagesDir: filepath.Join(dir, "full"), LeaveRunning: true})
	if err != nil {
		b.Fatalf("full dump: %v", err)
	}
	r.fullFrozen, r.fullPages = st.FrozenTime, st.PagesWritten
	os.RemoveAll(filepath.Join(dir, "full"))

	var keepers []int
	released := false
	before := ourChildren()
	defer func() {
		if !released {
			// A pre-dump that failed before writing its track file may
			// have started a keeper all the same: it is a child of ours
			// running this binary.
			for _, c := range ourChildren() {
				if !containsInt(before, c) && !containsInt(keepers, c) && isThisBinary(c) {
					keepers = append(keepers, c)
				}
			}
		}
		for _, k := range keepers {
			if released && keeperExits(k, 5*time.Second) {
				continue
			}
			if released {
				b.Errorf("keeper %d still runs 5 s after the final dump released it: killed it", k)
			}
			syscall.Kill(k, syscall.SIGKILL)
			if !keeperExits(k, 5*time.Second) {
				b.Errorf("keeper %d survived SIGKILL", k)
			}
		}
	}()
	preDump := func(name, prev string) *Stats {
		o := Options{Pid: pid, ImagesDir: filepath.Join(dir, name), TrackMem: trackMem, PrevImagesDir: prev, TrackBackend: BackendAuto, KeeperArgs: testproc.KeeperArgs()}
		st, err := PreDump(o)
		// A failed pre-dump may still have started a keeper: it exits by
		// itself when nothing is committed, but the track file of an
		// earlier iteration names it anyway.
		if k := trackedKeeper(o.ImagesDir); k > 0 && !containsInt(keepers, k) {
			keepers = append(keepers, k)
		}
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		if trackMem {
			if s := readTrack(b, o.ImagesDir); s.Backend != backend {
				b.Fatalf("%s tracked memory with %q, want %q", name, s.Backend, backend)
			}
		}
		return st
	}
	st = preDump("pre1", "")
	r.pre1Frozen, r.pre1Pages = st.FrozenTime, st.PagesWritten
	time.Sleep(preDumpPause)
	st = preDump("pre2", "../pre1")
	r.pre2Frozen, r.pre2Pages = st.FrozenTime, st.PagesWritten
	time.Sleep(preDumpPause)
	st, err = Run(Options{Pid: pid, ImagesDir: filepath.Join(dir, "final"), TrackMem: trackMem, PrevImagesDir: "../pre2", LeaveRunning: true})
	if err != nil {
		b.Fatalf("final dump: %v", err)
	}
	released = true
	r.finalFrozen, r.finalPages, r.finalParent = st.FrozenTime, st.PagesWritten, st.PagesSkippedParent
	r.finalScan, r.finalCopy = st.MemdumpTime, st.MemwriteTime
	// About 2 % of the area changes per pause; far more than a tenth
	// written means the tracking was not trusted.
	if area := uint64(benchMiB) << 20 / 4096; r.finalPages > area/10 || r.pre2Pages > area/10 {
		b.Errorf("pre-dump 2 wrote %d pages and the final dump %d of the %d-page area: tracking (%s) was lost", r.pre2Pages, r.finalPages, area, backend)
	}
	return r
}

// readTrack reads the track file a pre-dump left in dir.
func readTrack(b *testing.B, dir string) *trackState {
	d, err := images.OpenDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	s, err := readTrackState(d)
	if err != nil || s == nil {
		b.Fatalf("%s: track file: %v", dir, err)
	}
	return s
}

// trackedKeeper is the keeper PID in dir's track file; 0 if none.
func trackedKeeper(dir string) int {
	d, err := images.OpenDir(dir)
	if err != nil {
		return 0
	}
	s, err := readTrackState(d)
	if err != nil || s == nil {
		return 0
	}
	return s.KeeperPid
}

// keeperExits waits until the keeper process is gone (keeper.Start reaps
// it: it is our child) or a zombie.
func keeperExits(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for testproc.Alive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// ourChildren lists the children of this process.
func ourChildren() []int {
	self := os.Getpid()
	var out []int
	for _, c := range testproc.Descendants(self) {
		if st, err := proc.ReadStat(c); err == nil && st.PPid == self {
			out = append(out, c)
		}
	}
	return out
}

// isThisBinary tells whether pid runs the same executable as this process.
func isThisBinary(pid int) bool {
	self, err1 := os.Readlink("/proc/self/exe")
	exe, err2 := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err1 == nil && err2 == nil && self == exe
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
