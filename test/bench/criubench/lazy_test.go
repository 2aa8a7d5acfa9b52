package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func touchFile(start, end uint64, reads ...uint32) []byte {
	b := binary.LittleEndian.AppendUint64(nil, start)
	b = binary.LittleEndian.AppendUint64(b, end)
	for _, r := range reads {
		b = binary.LittleEndian.AppendUint32(b, r)
	}
	return b
}

func TestParseTouch(t *testing.T) {
	got, err := ParseTouch(touchFile(1000, 5000, 100, 200|faultBit, 300, 50000|faultBit))
	if err != nil {
		t.Fatal(err)
	}
	want := TouchStats{Pages: 4, Start: 1000, End: 5000, Pass: 4000, Median: 250, P99: 50000,
		Faults: 2, FaultMedian: 25100, FaultP99: 50000}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	got, err = ParseTouch(touchFile(1, 2, 7, 9))
	if err != nil || got.Faults != 0 || got.FaultMedian != 0 || got.Median != 8 {
		t.Errorf("no faults: %+v, %v", got, err)
	}
	for _, c := range []struct {
		b    []byte
		want string
	}{
		{touchFile(1, 2)[:12], "touch file of 12 bytes: want 16 + 4 per page"},
		{append(touchFile(1, 2, 5), 0), "touch file of 21 bytes: want 16 + 4 per page"},
		{touchFile(9, 2, 5), "touch file: pass ends at 2, before it starts at 9"},
	} {
		if _, err := ParseTouch(c.b); err == nil || err.Error() != c.want {
			t.Errorf("ParseTouch(%d bytes) = %v, want %q", len(c.b), err, c.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var xs []int64
	for i := int64(100); i >= 1; i-- {
		xs = append(xs, i)
	}
	for _, c := range []struct {
		xs   []int64
		p    float64
		want int64
	}{{xs, 99, 99}, {xs, 50, 50}, {xs, 100, 100}, {[]int64{7}, 99, 7}, {nil, 99, 0}, {[]int64{1, 2, 3}, 99, 3}} {
		if got := Percentile(c.xs, c.p); got != c.want {
			t.Errorf("Percentile(%d values, %v) = %d, want %d", len(c.xs), c.p, got, c.want)
		}
	}
	if xs[0] != 100 {
		t.Error("Percentile sorted its argument")
	}
}

func TestParseDaemonSummary(t *testing.T) {
	out := "lazy-pages daemon listening on /x/lazy-pages.socket\n" +
		"Lazy pages: all in place 1.113s after restore connected: 262144 pages (1024.0 MiB) of 1 tasks; 3756 faults answered (median 78µs, p99 1ms), 162275 pages pushed ahead of faults, 0 dropped by the tasks first\n"
	got, err := ParseDaemonSummary(out)
	want := DaemonSummary{OK: true, InPlace: 1113 * time.Millisecond, Pages: 262144, Faults: 3756,
		Median: 78 * time.Microsecond, P99: time.Millisecond, Pushed: 162275}
	if err != nil || got != want {
		t.Errorf("got %+v, %v\nwant %+v", got, err, want)
	}
	if _, err := ParseDaemonSummary("lazy-pages daemon listening on x\n"); err == nil {
		t.Error("no summary line: no error")
	}
	if _, err := ParseDaemonSummary(strings.Replace(out, "78µs", "78xs", 1)); err == nil || !strings.Contains(err.Error(), "78xs") {
		t.Errorf("bad duration: %v", err)
	}
}

func TestSelectSettings(t *testing.T) {
	got, err := SelectSettings("faults-only, local")
	if err != nil || len(got) != 2 || got[0].Name != "faults-only" || !got[0].NoPush || got[1].Name != "local" {
		t.Errorf("got %+v, %v", got, err)
	}
	if _, err := SelectSettings("local,remote"); err == nil || err.Error() != `-lazy-settings "local,remote": "remote" is not one of local, loopback, faults-only` {
		t.Errorf("unknown setting: %v", err)
	}
}

func TestRaisePipeMax(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipe-max-size")
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if err := os.WriteFile(path, []byte("1048576\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	put, old, err := raisePipeMax(path, 4<<20)
	if err != nil || old != 1048576 || read() != "4194304" {
		t.Fatalf("raise: old %d, now %s, %v", old, read(), err)
	}
	if err := put(); err != nil || read() != "1048576" {
		t.Errorf("put back: now %s, %v", read(), err)
	}
	if err := os.WriteFile(path, []byte("8388608\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	put, old, err = raisePipeMax(path, 4<<20)
	if err != nil || old != 8388608 || read() != "8388608" {
		t.Errorf("big enough already: old %d, now %s, %v", old, read(), err)
	}
	if err := put(); err != nil || read() != "8388608" {
		t.Errorf("big enough already, put back: now %s, %v", read(), err)
	}
	if _, _, err := raisePipeMax(filepath.Join(t.TempDir(), "none"), 1); err == nil {
		t.Error("no such file: no error")
	}
}

func TestFmtDur(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0"}, {431, "431 ns"}, {78 * time.Microsecond, "78.0 µs"}, {1234 * time.Microsecond, "1.23 ms"},
		{256 * time.Millisecond, "256 ms"}, {35512 * time.Millisecond, "35.5 s"}} {
		if got := fmtDur(c.d); got != c.want {
			t.Errorf("fmtDur(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestLazyFlags(t *testing.T) {
	c, err := parseFlags([]string{"-lazy"})
	if err != nil || !c.lazy || c.storage != "tmpfs" || c.lazySets != "local,loopback,faults-only" || c.reps != 3 {
		t.Errorf("-lazy: %+v, %v", c, err)
	}
	if c, err = parseFlags([]string{"-lazy", "-storage", "disk", "-quick"}); err != nil || c.storage != "disk" || c.reps != 1 {
		t.Errorf("-lazy -storage disk -quick: %+v, %v", c, err)
	}
	ws, err := Select(LazyWorkloads, "", true)
	if err != nil || names(ws) != "touch-16MiB" {
		t.Errorf("-lazy -quick runs %s, %v", names(ws), err)
	}
}

func lazySample(run, inPlace, faultMed, faultP99 time.Duration, faults int) LazySample {
	return LazySample{Run: run, InPlace: inPlace, PassStart: run + time.Millisecond, PassEnd: inPlace,
		Touch: TouchStats{Pages: 4096, Faults: faults, FaultMedian: faultMed, FaultP99: faultP99, Median: 400, P99: 900}}
}

func TestWriteLazyTable(t *testing.T) {
	ms := time.Millisecond
	us := time.Microsecond
	wls := LazyWorkloads
	sets := LazySettings[:2]
	daemon := DaemonSummary{OK: true, InPlace: 90 * ms, Median: 80 * us, P99: 900 * us, Faults: 10, Pushed: 4000}
	g := lazySample(20*ms, 100*ms, 100*us, 1*ms, 20)
	g.Daemon = daemon
	res := LazyResults{
		{"touch-16MiB", "local", "gockpt"}:    {g, g, g},
		{"touch-16MiB", "loopback", "gockpt"}: {lazySample(20*ms, 100*ms, 100*us, 1*ms, 19)},
		{"touch-16MiB", "loopback", "CRIU"}:   {lazySample(20*ms, 100*ms, 100*us, 1*ms, 500)},
		{"touch-16MiB", "local", "CRIU"}:      {lazySample(40*ms, 200*ms, 50*us, 500*us, 700), lazySample(40*ms, 200*ms, 50*us, 500*us, 700)},
		{"touch-1GiB", "local", "gockpt"}:     {lazySample(22*ms, 2*time.Second, 80*us, 3*ms, 3000), {Err: "gockpt restore: exit status 1"}},
		{"touch-1GiB", "local", "CRIU"}:       {lazySample(60*ms, 4*time.Second, 80*us, 1*ms, 28000)},
		{"touch-1GiB", "loopback", "CRIU"}:    {{Err: "CRIU page-server: boom"}},
		{"touch-1GiB", "loopback", "gockpt"}:  {lazySample(15*ms, 2*time.Second, 0, 0, 0)},
	}
	var b bytes.Buffer
	WriteLazyTable(&b, res, wls, sets, "gockpt", "CRIU")
	out := b.String()
	for _, want := range []string{
		"| 16 MiB | local | 20.0 ms | 40.0 ms | 0.50x | 100 ms | 200 ms | 0.50x | 100 µs (20) | 50.0 µs (700) | 2.00x | 1.00 ms | 500 µs | 2.00x |\n",
		"| 16 MiB | loopback | 20.0 ms | 20.0 ms | 1.00x | 100 ms | 100 ms | 1.00x | 100 µs (19) | 100 µs (500) | - | 1.00 ms | 1.00 ms | - |\n",
		"| 1 GiB | local | 22.0 ms (1/2 FAIL) | 60.0 ms | 0.37x | 2.00 s (1/2 FAIL) | 4.00 s | 0.50x | 80.0 µs (3000) (1/2 FAIL) | 80.0 µs (28000) | 1.00x | 3.00 ms (1/2 FAIL) | 1.00 ms | 3.00x |\n",
		"| 1 GiB | loopback | 15.0 ms | FAIL | - | 2.00 s | FAIL | - | - (0) | FAIL | - | - | FAIL | - |\n",
		"| 16 MiB | local | 21.0 ms / 41.0 ms | 100 ms / 200 ms | 0.50x | 400 ns / 400 ns | 900 ns / 900 ns | 90.0 ms, 80.0 µs, 900 µs, 10, 4000 |\n",
		"| local | 20.0 ms | 22.0 ms (1/2 FAIL) | 1.10x | 40.0 ms | 60.0 ms | 1.50x |\n",
		"| loopback | 20.0 ms | 15.0 ms | 0.75x | 20.0 ms | FAIL | - |\n",
		"- touch-1GiB local, gockpt: 1/2 FAIL: gockpt restore: exit status 1\n",
		"- touch-1GiB loopback, CRIU: 1/1 FAIL: CRIU page-server: boom\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks\n%s\ntable:\n%s", want, out)
		}
	}
	if strings.Contains(out, "256 MiB") {
		t.Errorf("a size without runs has rows:\n%s", out)
	}
}

// The touch mode for real, small: SIGUSR2 makes the workload read every page
// once and write the touch file; its pages are all in place, so the reads
// (almost) never fault; SIGUSR1 still answers the checksum.
func TestTouchMode(t *testing.T) {
	r := newRunner(t)
	w := Workload{Name: "touch-1MiB", Mode: "touch", N: 1}
	runDir := t.TempDir()
	root, pids, before, err := r.start(w, runDir)
	defer func() {
		KillAll(pids)
		if err := WaitGone(pids, r.GoneTimeout); err != nil {
			t.Error(err)
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	wall := uint64(time.Now().UnixNano())
	if err := unix.Kill(root, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	b, err := waitFile(context.Background(), filepath.Join(runDir, "state.touch"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ParseTouch(b)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Pages != 256 || ts.Start < wall || ts.End < ts.Start || ts.Median <= 0 {
		t.Errorf("touch stats %+v (sent SIGUSR2 at %d)", ts, wall)
	}
	// A page in place reads without a fault; a rare one may still fault
	// (a page being migrated or compacted), not a quarter of them.
	if ts.Faults > 64 {
		t.Errorf("%d of 256 reads faulted on pages in place", ts.Faults)
	}
	after, err := r.poke(w, runDir, root, 2)
	if err == nil {
		err = CheckSame(before, after)
	}
	if err != nil {
		t.Error(err)
	}
}

// startDaemon knows a daemon listens by its line (gockpt) or by a byte on
// --status-fd (CRIU), and says when it exits first.
func TestStartDaemon(t *testing.T) {
	r := newRunner(t)
	for _, c := range []struct {
		name, script, want string
	}{
		{"gockpt", "echo 'lazy-pages daemon listening on x'; sleep 0.2; echo done", ""},
		{"CRIU", `[ "$6" = --status-fd ] && [ "$7" = 3 ] && printf '\0' >&3; sleep 0.2; echo done`, ""},
		{"gockpt", "echo 'Error: no images' >&2; exit 1", "gockpt lazy-pages exited before it listened: exit status 1: Error: no images"},
		{"CRIU", "exec 3>&-; echo 'Error (criu/uffd.c:1): boom' >&2; exit 1", "CRIU lazy-pages exited before it listened: exit status 1: Error (criu/uffd.c:1): boom"},
	} {
		tool := fakeTool(t, c.script)
		tool.Name = c.name
		runDir := t.TempDir()
		d, err := r.startDaemon(tool, runDir, "lazy-pages", "lazy-pages daemon listening on", "-D", "img", "-o", "lazy-pages.log")
		if c.want != "" {
			if err == nil || err.Error() != c.want {
				t.Errorf("%s %q: %v, want %q", c.name, c.script, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", c.name, c.script, err)
			continue
		}
		if err := d.wait(context.Background(), time.Minute); err != nil {
			t.Errorf("%s %q: wait: %v", c.name, c.script, err)
		}
		if d.exited.IsZero() || tail(d.out) != "done" {
			t.Errorf("%s %q: exited %v, output ends %q", c.name, c.script, d.exited, tail(d.out))
		}
	}
	// A daemon that hangs is killed by wait's timeout.
	tool := fakeTool(t, "echo 'lazy-pages daemon listening on x'; exec sleep 60")
	tool.Name = "gockpt"
	d, err := r.startDaemon(tool, t.TempDir(), "lazy-pages", "lazy-pages daemon listening on")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.wait(context.Background(), 100*time.Millisecond); err == nil || err.Error() != "still running after 100ms: killed" {
		t.Errorf("hung daemon: %v", err)
	}
}
