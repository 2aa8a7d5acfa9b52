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
// anonymous memory with the raw baseline of copying the same memory into a
// file with process_vm_readv, in the same run. Images go to tmpfs.
func BenchmarkDump1GiB(b *testing.B) {
	p, addr := startBigmem(b)
	size := int64(benchMiB) << 20
	b.Run("raw-process_vm_readv", func(b *testing.B) {
		b.SetBytes(size)
		dir := tmpfsDir(b)
		for i := 0; i < b.N; i++ {
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
			os.Remove(f.Name())
		}
	})
	for _, m := range []struct {
		name   string
		reader PageReader
	}{{"gockpt-dump-parasite-vmsplice", ReadByParasite}, {"gockpt-dump-process_vm_readv", ReadByVM}} {
		b.Run(m.name, func(b *testing.B) {
			benchDump(b, p.Pid, size, m.reader)
		})
	}
}

func benchDump(b *testing.B, pid int, size int64, reader PageReader) {
	{
		b.SetBytes(size)
		dir := tmpfsDir(b)
		var frozen time.Duration
		for i := 0; i < b.N; i++ {
			img := filepath.Join(dir, fmt.Sprint(i))
			st, err := Run(Options{Pid: pid, ImagesDir: img, LeaveRunning: true, PageReader: reader})
			if err != nil {
				b.Fatal(err)
			}
			frozen += st.FrozenTime
			os.RemoveAll(img)
		}
		b.ReportMetric(float64(frozen.Milliseconds())/float64(b.N), "frozen-ms/op")
	}
}
