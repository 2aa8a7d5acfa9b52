package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/testproc"
)

// benchMiB is the size of the benchmark process's touched anonymous memory.
const benchMiB = 1024

// tmpfsDir returns a fresh directory on tmpfs, so that the benchmark measures
// reading memory, not a disk.
func tmpfsDir(b *testing.B) string {
	d, err := os.MkdirTemp("/dev/shm", "gockpt-bench-")
	if err != nil {
		b.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func startBigmem(b *testing.B) (*testproc.Proc, uint64) {
	bin := testproc.BuildC(b, "testdata/bigmem.c")
	dir := b.TempDir()
	p := testproc.Start(b, bin, dir, fmt.Sprint(benchMiB))
	testproc.WaitFile(b, filepath.Join(dir, "ready"), 60*time.Second)
	raw, _ := os.ReadFile(filepath.Join(dir, "ready"))
	var addr uint64
	fmt.Sscanf(string(raw), "%x", &addr)
	return p, addr
}

// BenchmarkDump1GiB compares a full dump of a process with 1 GiB of touched
// anonymous memory against the raw baseline of copying the same memory into
// a file with process_vm_readv, measured in the same run and interleaved
// round by round (this machine's speed drifts): both ways of reading pages
// (the parasite's vmsplice and gockpt's process_vm_readv) are dumped each
// round. Images go to tmpfs. Reported: MB/s of each and the ratio of each
// dump to the raw baseline.
func BenchmarkDump1GiB(b *testing.B) {
	p, addr := startBigmem(b)
	size := int64(benchMiB) << 20
	dir := tmpfsDir(b)
	var raw, byParasite, byVM, frozenParasite, frozenVM time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		f, err := os.Create(filepath.Join(dir, "raw"))
		if err != nil {
			b.Fatal(err)
		}
		r := newVMReader(p.Pid)
		if err := r.copyRanges([]mem.Range{{Start: addr, Len: uint64(size)}}, f); err != nil {
			b.Fatal(err)
		}
		r.close()
		f.Close()
		raw += time.Since(start)
		os.Remove(f.Name())
		for _, m := range []struct {
			reader        PageReader
			total, frozen *time.Duration
		}{{ReadByParasite, &byParasite, &frozenParasite}, {ReadByVM, &byVM, &frozenVM}} {
			img := filepath.Join(dir, fmt.Sprint(i))
			start := time.Now()
			st, err := Run(Options{Pid: p.Pid, ImagesDir: img, LeaveRunning: true, PageReader: m.reader})
			if err != nil {
				b.Fatal(err)
			}
			*m.total += time.Since(start)
			*m.frozen += st.FrozenTime
			os.RemoveAll(img)
		}
	}
	mbs := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(raw), "raw-MB/s")
	b.ReportMetric(mbs(byParasite), "dump-vmsplice-MB/s")
	b.ReportMetric(mbs(byVM), "dump-vmreadv-MB/s")
	b.ReportMetric(raw.Seconds()/byParasite.Seconds(), "vmsplice/raw")
	b.ReportMetric(raw.Seconds()/byVM.Seconds(), "vmreadv/raw")
	b.ReportMetric(float64(frozenParasite.Milliseconds())/float64(b.N), "frozen-ms(vmsplice)")
}
