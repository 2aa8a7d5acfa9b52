package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
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
	var addr uint64
	for addr == 0 { // ready is written with stdio: wait for its content
		raw, _ := os.ReadFile(filepath.Join(dir, "ready"))
		fmt.Sscanf(string(raw), "%x", &addr)
		time.Sleep(time.Millisecond)
	}
	return p, addr
}

// BenchmarkDump1GiB compares a full dump of a process with 1 GiB of touched
// anonymous memory against the raw baseline of copying the same memory into
// a file with process_vm_readv, measured in the same run and interleaved
// round by round: both ways of reading pages (the parasite's vmsplice and
// gockpt's process_vm_readv) are dumped each round. Images go to tmpfs. One
// untimed warm-up round comes first (tmpfs and the VM's memory settle), and
// medians over the rounds are reported, as this machine's speed drifts.
func BenchmarkDump1GiB(b *testing.B) {
	p, addr := startBigmem(b)
	size := int64(benchMiB) << 20
	dir := tmpfsDir(b)
	round := func(i int) (raw, byParasite, byVM, frozen time.Duration) {
		start := time.Now()
		f, err := os.Create(filepath.Join(dir, "raw"))
		if err != nil {
			b.Fatal(err)
		}
		r := newVMReader(p.Pid)
		if err := r.copyRanges([]mem.Range{{Start: addr, Len: uint64(size)}}, f, false); err != nil {
			b.Fatal(err)
		}
		r.close()
		f.Close()
		raw = time.Since(start)
		os.Remove(f.Name())
		for _, m := range []struct {
			reader PageReader
			total  *time.Duration
		}{{ReadByParasite, &byParasite}, {ReadByVM, &byVM}} {
			img := filepath.Join(dir, fmt.Sprint(i))
			start := time.Now()
			st, err := Run(Options{Pid: p.Pid, ImagesDir: img, LeaveRunning: true, PageReader: m.reader})
			if err != nil {
				b.Fatal(err)
			}
			*m.total = time.Since(start)
			if m.reader == ReadByParasite {
				frozen = st.FrozenTime
			}
			os.RemoveAll(img)
		}
		return
	}
	round(-1)
	var raws, pars, vms, frozens []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		raw, par, vm, fr := round(i)
		raws, pars, vms, frozens = append(raws, raw), append(pars, par), append(vms, vm), append(frozens, fr)
	}
	mbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(median(raws)), "raw-MB/s")
	b.ReportMetric(mbs(median(pars)), "dump-vmsplice-MB/s")
	b.ReportMetric(mbs(median(vms)), "dump-vmreadv-MB/s")
	b.ReportMetric(median(raws).Seconds()/median(pars).Seconds(), "vmsplice/raw")
	b.ReportMetric(median(raws).Seconds()/median(vms).Seconds(), "vmreadv/raw")
	b.ReportMetric(float64(median(frozens).Milliseconds()), "frozen-ms(vmsplice)")
}

// median of a non-empty list of durations.
func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
