package restore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/testproc"
)

// BenchmarkRestore1GiB restores a process with 1 GiB of touched anonymous
// memory from images on tmpfs, against the raw baseline of writing the same
// pages file into 1 GiB of fresh memory of another process with
// process_vm_writev, in the same run and interleaved round by round; after
// an untimed warm-up round, medians are reported.
func BenchmarkRestore1GiB(b *testing.B) {
	const mib = 1024
	bin := testproc.BuildC(b, "../dump/testdata/bigmem.c")
	dir := b.TempDir()
	p := testproc.Start(b, bin, dir, fmt.Sprint(mib))
	testproc.WaitFile(b, filepath.Join(dir, "ready"), 60*time.Second)
	imgs, err := os.MkdirTemp("/dev/shm", "gockpt-bench-")
	if err != nil {
		b.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	defer os.RemoveAll(imgs)
	if _, err := dump.Run(dump.Options{Pid: p.Pid, ImagesDir: imgs}); err != nil {
		b.Fatal(err)
	}
	p.Cmd.Wait()
	size := int64(mib) << 20
	var restoreTimes, rawTimes []time.Duration
	for i := -1; i < b.N; i++ { // round -1 is an untimed warm-up
		start := time.Now()
		res, err := Run(Options{ImagesDir: imgs})
		if err != nil {
			b.Fatal(err)
		}
		restoreTime := time.Since(start)
		unix.Kill(res.RootPid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
		// Baseline: the same bytes from the pages file into fresh (never
		// touched) memory of another process, nothing else.
		fresh := testproc.Start(b, bin, b.TempDir(), fmt.Sprint(mib), "fresh")
		testproc.WaitFile(b, filepath.Join(fresh.Cmd.Args[1], "ready"), 60*time.Second)
		var faddr uint64
		for faddr == 0 { // ready is written with stdio: wait for its content
			fraw, _ := os.ReadFile(filepath.Join(fresh.Cmd.Args[1], "ready"))
			fmt.Sscanf(string(fraw), "%x", &faddr)
			time.Sleep(time.Millisecond)
		}
		start = time.Now()
		if err := writeAll(fresh.Pid, faddr, filepath.Join(imgs, "pages-1.img"), size); err != nil {
			b.Fatal(err)
		}
		rawTime := time.Since(start)
		fresh.Kill()
		if i >= 0 {
			restoreTimes, rawTimes = append(restoreTimes, restoreTime), append(rawTimes, rawTime)
		}
	}
	restoreTime, rawTime := median(restoreTimes), median(rawTimes)
	mbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(rawTime), "raw-MB/s")
	b.ReportMetric(mbs(restoreTime), "restore-MB/s")
	b.ReportMetric(float64(restoreTime.Milliseconds()), "restore-ms")
	b.ReportMetric(rawTime.Seconds()/restoreTime.Seconds(), "restore/raw")
}

// median of a non-empty list of durations.
func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// writeAll copies size bytes of the pages file into the process at addr
// (which bytes does not matter for a speed baseline).
func writeAll(pid int, addr uint64, pages string, size int64) error {
	f, err := os.Open(pages)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := io.ReadFull(f, buf); err != nil {
			return err
		}
		if err := ptrace.WriteMem(pid, addr+uint64(off), buf); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkMixedFds dumps and restores a tree of 8 tasks each holding 200
// fds of mixed kinds (regular files, pipes, unix socketpairs, eventfds,
// an epoll set, signalfds, timerfds, memfds, inotify instances) against
// the same tree holding 200 regular files each, alternating the two round
// by round; images on tmpfs; medians after an untimed warm-up round.
func BenchmarkMixedFds(b *testing.B) {
	bin := testproc.BuildC(b, "testdata/mixedfds.c")
	// Orphans of the dumped trees come to us, to be reaped at once (PID 1
	// here reaps late, and restore needs the PIDs free).
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	round := func(kind string) (dumpTime, restoreTime time.Duration) {
		dir := b.TempDir()
		p := testproc.Start(b, bin, dir, kind)
		testproc.WaitFile(b, filepath.Join(dir, "ready"), 60*time.Second)
		tree := append([]int{p.Pid}, testproc.Descendants(p.Pid)...)
		imgs, err := os.MkdirTemp("/dev/shm", "gockpt-bench-")
		if err != nil {
			b.Skipf("no tmpfs at /dev/shm: %v", err)
		}
		defer os.RemoveAll(imgs)
		start := time.Now()
		if _, err := dump.Run(dump.Options{Pid: p.Pid, ImagesDir: imgs}); err != nil {
			b.Fatal(err)
		}
		dumpTime = time.Since(start)
		p.Cmd.Wait()
		reapAll(tree)
		start = time.Now()
		res, err := Run(Options{ImagesDir: imgs})
		if err != nil {
			b.Fatal(err)
		}
		restoreTime = time.Since(start)
		for _, pid := range tree {
			unix.Kill(pid, unix.SIGKILL)
		}
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
		reapAll(tree)
		return
	}
	round("mixed")
	round("reg")
	var md, mr, rd, rr []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, r := round("mixed")
		md, mr = append(md, d), append(mr, r)
		d, r = round("reg")
		rd, rr = append(rd, d), append(rr, r)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(md)), "mixed-dump-ms")
	b.ReportMetric(ms(median(rd)), "reg-dump-ms")
	b.ReportMetric(ms(median(mr)), "mixed-restore-ms")
	b.ReportMetric(ms(median(rr)), "reg-restore-ms")
	b.ReportMetric(median(md).Seconds()/median(rd).Seconds(), "dump-mixed/reg")
	b.ReportMetric(median(mr).Seconds()/median(rr).Seconds(), "restore-mixed/reg")
}

// reapAll reaps what it can and waits until every PID of tree is free.
func reapAll(tree []int) {
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range tree {
		for time.Now().Before(deadline) {
			var ws unix.WaitStatus
			for {
				if r, _ := unix.Wait4(-1, &ws, unix.WNOHANG, nil); r <= 0 {
					break
				}
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}
