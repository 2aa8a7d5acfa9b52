package parasite

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

const benchMiB = 256

// BenchmarkDumpPages compares the two ways of reading a task's memory into
// an image file: the parasite's vmsplice with splice out, and
// process_vm_readv with write. The task has 256 MiB of touched anonymous
// memory; the file lives in the test's temporary directory and, for a
// result without the disk's writeback, in /dev/shm.
func BenchmarkDumpPages(b *testing.B) {
	bin := buildC(b, "memhog")
	cmd := exec.Command(bin, strconv.Itoa(benchMiB))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	b.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	addr, err := strconv.ParseUint(strings.TrimSpace(line), 0, 64)
	if err != nil {
		b.Fatal(err)
	}
	ranges := []Range{{addr, benchMiB << 20}}

	tr := ptrace.NewTracer()
	defer tr.Close()
	te, err := tr.Seize(pid)
	if err != nil {
		b.Fatal(err)
	}
	p, err := Inject(tr, te, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := p.Cure(); err != nil {
			b.Error(err)
		}
		te.Detach()
	}()

	dirs := map[string]string{"tmpdir": b.TempDir()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "gockpt-bench-")
		if err == nil {
			defer os.RemoveAll(d)
			dirs["shm"] = d
		}
	}
	for _, where := range []string{"tmpdir", "shm"} {
		dir, ok := dirs[where]
		if !ok {
			continue
		}
		for _, method := range []string{"vmsplice", "process_vm_readv"} {
			b.Run(where+"/"+method, func(b *testing.B) {
				f, err := os.CreateTemp(dir, "pages-")
				if err != nil {
					b.Fatal(err)
				}
				defer os.Remove(f.Name())
				defer f.Close()
				b.SetBytes(benchMiB << 20)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					f.Truncate(0)
					f.Seek(0, 0)
					b.StartTimer()
					var n int64
					if method == "vmsplice" {
						n, err = p.DumpPages(ranges, f)
					} else {
						n, err = ReadPagesVM(pid, ranges, f)
					}
					if err != nil || n != benchMiB<<20 {
						b.Fatalf("%s: %d bytes, %v", method, n, err)
					}
				}
			})
		}
	}
}
