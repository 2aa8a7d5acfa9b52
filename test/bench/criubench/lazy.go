package main

// The post-copy bench (-lazy): each tool dumps a process holding N MiB of
// touched anonymous memory, then restores it with --lazy-pages, its own
// lazy-pages daemon bringing the pages in while the process runs. As soon as
// the restore returns the bench sends the process SIGUSR2, and the process
// reads one byte of every page once, in a random order, timing each read
// (workload.c's touch mode). What one run measures:
//
//   - time to run: the restore command, wall clock: with -d the tree runs
//     once it returns;
//   - all in place: from the start of the restore until the lazy-pages
//     daemon exits (both tools' daemons exit once every page is in place);
//   - the first touches as the workload saw them: the reads that took a
//     page fault (the page was not in place: the kernel waited for the
//     daemon to bring it in), their count, median and p99, and the median
//     and p99 of all the reads.
//
// Settings: local (the daemon reads the images), loopback (the daemon fetches
// the pages from a page server on 127.0.0.1), faults-only (local, gockpt's
// daemon with --push-pages 0: pages come only when they fault; CRIU's daemon
// always pushes, so its faults-only runs are its local runs again). With
// --push-pages 0 the pages the workload never reads stay lazy while it
// lives: gockpt's daemon ends when the bench kills the tree after its pass,
// so its faults-only runs have no all-in-place time.
//
// After the daemon exits the process is asked for its checksum (SIGUSR1) and
// must answer what it answered before the dump: a run whose memory came
// back wrong is a failure, not a time.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LazySetting is one way of serving the pages of a lazy restore.
type LazySetting struct {
	Name       string
	PageServer bool // pages from a page server on loopback
	NoPush     bool // gockpt's daemon with --push-pages 0
}

// LazySettings are the settings, in table order.
var LazySettings = []LazySetting{
	{Name: "local"},
	{Name: "loopback", PageServer: true},
	{Name: "faults-only", NoPush: true},
}

// LazyWorkloads are the sizes of the post-copy bench, in table order.
var LazyWorkloads = []Workload{
	{Name: "touch-16MiB", Family: FamilyMemory, Mode: "touch", N: 16, Quick: true},
	{Name: "touch-256MiB", Family: FamilyMemory, Mode: "touch", N: 256},
	{Name: "touch-1GiB", Family: FamilyMemory, Mode: "touch", N: 1024},
}

// SelectSettings returns the settings named in the comma-separated list.
func SelectSettings(list string) ([]LazySetting, error) {
	var out []LazySetting
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range LazySettings {
			if s.Name == name {
				out, found = append(out, s), true
			}
		}
		if !found {
			return nil, fmt.Errorf("-lazy-settings %q: %q is not one of local, loopback, faults-only", list, name)
		}
	}
	return out, nil
}

// LazySample is what one lazy run of one tool measured.
type LazySample struct {
	Run     time.Duration // restore command, wall clock
	InPlace time.Duration // restore start to the daemon's exit; 0 with gockpt --push-pages 0 (never: pages come only on faults)
	Touch   TouchStats    // the workload's first touches
	// From the start of the restore until the workload's
	// first read of its pass, and until the end of its pass.
	PassStart, PassEnd time.Duration
	Daemon             DaemonSummary // gockpt's own summary line, when it printed one
	PipeMax            string        // fs.pipe-max-size as the page server started (loopback)
	Err                string        // empty when the run succeeded and checked
}

// OK tells whether the run succeeded and the workload's memory checked.
func (s LazySample) OK() bool { return s.Err == "" && s.Run > 0 }

// pipeMaxSize is the sysctl CRIU's page server needs raised: without
// CAP_SYS_RESOURCE it cannot grow its pipes past it.
const pipeMaxSize = "/proc/sys/fs/pipe-max-size"

// CRIUPipeMax is the fs.pipe-max-size CRIU's page-server runs get (4 MiB).
const CRIUPipeMax = 4 << 20

// raisePipeMax sets fs.pipe-max-size to at least want and returns the
// function that puts the old value back; it changes nothing when the value
// is already big enough.
func raisePipeMax(path string, want int) (restore func() error, old int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	old, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %q is not a number", path, b)
	}
	if old >= want {
		return func() error { return nil }, old, nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644); err != nil {
		return nil, old, fmt.Errorf("raise %s to %d: %w", path, want, err)
	}
	return func() error {
		if err := os.WriteFile(path, []byte(strconv.Itoa(old)), 0o644); err != nil {
			return fmt.Errorf("put %s back to %d: %w", path, old, err)
		}
		return nil
	}, old, nil
}

const (
	daemonReadyTimeout = time.Minute
	lazyTimeout        = 5 * time.Minute // for every page to be in place, and for the touch pass
	psExitTimeout      = 30 * time.Second
)

// isCRIU tells how a tool says its daemon listens: CRIU writes a byte to
// --status-fd, gockpt prints a line.
func isCRIU(t Tool) bool { return t.Name == "CRIU" }

// RunLazy starts the workload, dumps it with tool into imgDir, restores it
// with --lazy-pages as set says, and measures as the file comment says;
// then it kills what it started and what the restore made.
func (r *Runner) RunLazy(tool Tool, w Workload, set LazySetting, imgDir string) (s LazySample) {
	fail := func(format string, a ...any) LazySample {
		if s.Err == "" {
			s.Err = fmt.Sprintf(format, a...)
		}
		return s
	}
	runDir, err := os.MkdirTemp(r.WorkDir, w.Name+"-"+set.Name+"-"+tool.Name+"-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(runDir)
	defer ReapStray()
	if err := os.RemoveAll(imgDir); err != nil {
		return fail("%v", err)
	}
	if err := os.MkdirAll(imgDir, 0o700); err != nil {
		return fail("%v", err)
	}
	defer removeImages(imgDir)
	defer r.sweep()

	root, pids, before, err := r.start(w, runDir)
	if err != nil {
		KillAll(pids)
		_ = WaitGone(pids, r.GoneTimeout)
		return fail("workload: %v", err)
	}
	dumpArgs := append([]string{"-t", strconv.Itoa(root), "-D", imgDir, "-o", "dump.log", "-v4"}, r.DumpArgs...)
	if _, _, err := r.tool(tool, runDir, "dump", dumpArgs...); err != nil {
		KillAll(pids)
		_ = WaitGone(pids, r.GoneTimeout)
		return fail("%v%s", err, logTail(imgDir, "dump.log"))
	}
	if err := WaitGone(pids, r.GoneTimeout); err != nil {
		KillAll(pids)
		_ = WaitGone(pids, r.GoneTimeout)
		return fail("after the dump, %v", err)
	}
	syncDir(imgDir)
	defer func() {
		all := append(append([]int(nil), pids...), TreePIDs(root)...)
		KillAll(all)
		if err := WaitGone(all, r.GoneTimeout); err != nil && s.Err == "" {
			s.Err = "restored tree not killed: " + err.Error()
		}
	}()

	var ps *daemon
	var daemonArgs []string
	if set.PageServer {
		port, err := freePort()
		if err != nil {
			return fail("%v", err)
		}
		if isCRIU(tool) {
			put, _, err := raisePipeMax(pipeMaxSize, CRIUPipeMax)
			if err != nil {
				return fail("%v", err)
			}
			defer func() {
				if err := put(); err != nil && s.Err == "" {
					s.Err = err.Error()
				}
			}()
		}
		if b, err := os.ReadFile(pipeMaxSize); err == nil {
			s.PipeMax = strings.TrimSpace(string(b))
		}
		ps, err = r.startDaemon(tool, runDir, "page-server", "page server listening on",
			"--lazy-pages", "-D", imgDir, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "-o", "page-server.log")
		if err != nil {
			return fail("%v%s", err, logTail(imgDir, "page-server.log"))
		}
		defer ps.stop()
		daemonArgs = append(daemonArgs, "--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(port))
	}
	if !isCRIU(tool) {
		daemonArgs = append(daemonArgs, r.GockptLazyArgs...)
		if set.NoPush {
			daemonArgs = append(daemonArgs, "--push-pages", "0")
		}
	}
	lp, err := r.startDaemon(tool, runDir, "lazy-pages", "lazy-pages daemon listening on",
		append([]string{"-D", imgDir, "-o", "lazy-pages.log"}, daemonArgs...)...)
	if err != nil {
		return fail("%v%s", err, logTail(imgDir, "lazy-pages.log"))
	}
	defer lp.stop()

	start := time.Now()
	wall := uint64(start.UnixNano()) // the workload stamps its pass in CLOCK_REALTIME
	s.Run, _, err = r.tool(tool, runDir, "restore", "-D", imgDir, "--lazy-pages", "-d", "-o", "restore.log")
	if err != nil {
		s.Run = 0
		return fail("%v%s", err, logTail(imgDir, "restore.log"))
	}
	touchFile := filepath.Join(runDir, "state.touch")
	if err := unix.Kill(root, unix.SIGUSR2); err != nil {
		return fail("SIGUSR2 to %d after the restore: %v", root, err)
	}

	readTouch := func() error {
		b, err := waitFile(r.Ctx, touchFile, lazyTimeout)
		if err != nil {
			return fmt.Errorf("the workload's read of its pages: %w", err)
		}
		if s.Touch, err = ParseTouch(b); err != nil {
			return err
		}
		if want := int(w.N << 20 / 4096); s.Touch.Pages != want {
			return fmt.Errorf("the workload read %d pages, want %d", s.Touch.Pages, want)
		}
		if s.Touch.Start < wall {
			return fmt.Errorf("the workload's pass started before the restore (%d < %d)", s.Touch.Start, wall)
		}
		s.PassStart, s.PassEnd = time.Duration(s.Touch.Start-wall), time.Duration(s.Touch.End-wall)
		if err := r.check(w, runDir, root, pids, before); err != nil {
			return fmt.Errorf("restored wrong: %w", err)
		}
		return nil
	}
	waitDaemons := func(timeout time.Duration) error {
		if err := lp.wait(r.Ctx, timeout); err != nil {
			return fmt.Errorf("%s lazy-pages: %w%s", tool.Name, err, logTail(imgDir, "lazy-pages.log"))
		}
		if out, err := os.ReadFile(lp.out); err == nil {
			s.Daemon, _ = ParseDaemonSummary(string(out))
		}
		if ps != nil {
			if err := ps.wait(r.Ctx, psExitTimeout); err != nil {
				return fmt.Errorf("%s page-server, after every page was in place: %w%s", tool.Name, err, logTail(imgDir, "page-server.log"))
			}
		}
		return nil
	}
	if set.NoPush && !isCRIU(tool) {
		// Pages come only when they fault: the pages the workload never
		// reads (much of its stack, libc's data) stay lazy until the tree
		// exits, when the daemon ends and prints its fault latencies.
		if err := readTouch(); err != nil {
			return fail("%v", err)
		}
		all := append(append([]int(nil), pids...), TreePIDs(root)...)
		KillAll(all)
		if err := WaitGone(all, r.GoneTimeout); err != nil {
			return fail("restored tree not killed: %v", err)
		}
		if err := waitDaemons(psExitTimeout); err != nil {
			return fail("after the tree was killed, %v", err)
		}
		s.Daemon.InPlace = 0 // it ended with the tree, not with every page in place
		return s
	}
	if err := waitDaemons(lazyTimeout); err != nil {
		return fail("%v", err)
	}
	s.InPlace = lp.exited.Sub(start)
	if err := readTouch(); err != nil {
		return fail("%v", err)
	}
	return s
}

// daemon is a tool command that runs beside the restore: lazy-pages or
// page-server.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	out    string        // its stdout and stderr
	done   chan struct{} // closed once it has exited and been reaped
	exited time.Time
	err    error
}

// startDaemon starts `tool step args...` and returns once it listens: CRIU
// says so on --status-fd, gockpt by printing marker.
func (r *Runner) startDaemon(t Tool, runDir, step, marker string, args ...string) (*daemon, error) {
	d := &daemon{name: t.Name + " " + step, out: filepath.Join(runDir, t.Name+"-"+step+".out"), done: make(chan struct{})}
	out, err := os.Create(d.out)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	var ready *os.File
	var statusW *os.File
	if isCRIU(t) {
		if ready, statusW, err = os.Pipe(); err != nil {
			return nil, err
		}
		defer ready.Close()
		args = append(args, "--status-fd", "3")
	}
	d.cmd = exec.Command(t.Path, append([]string{step}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if statusW != nil {
		d.cmd.ExtraFiles = []*os.File{statusW}
	}
	err = d.cmd.Start()
	if statusW != nil {
		statusW.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		d.exited = time.Now()
		close(d.done)
	}()

	listening := make(chan bool, 1)
	if ready != nil {
		go func() {
			var b [1]byte
			n, _ := ready.Read(b[:])
			listening <- n == 1
		}()
	}
	deadline := time.After(daemonReadyTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ok := <-listening:
			if ok {
				return d, nil
			}
			listening = nil // EOF: the daemon exited; done says how
		case <-d.done:
			return nil, fmt.Errorf("%s exited before it listened: %v: %s", d.name, d.err, tail(d.out))
		case <-deadline:
			d.stop()
			return nil, fmt.Errorf("%s: not listening after %v", d.name, daemonReadyTimeout)
		case <-r.Ctx.Done():
			d.stop()
			return nil, fmt.Errorf("%s: interrupted", d.name)
		case <-tick.C:
			if ready == nil {
				if b, err := os.ReadFile(d.out); err == nil && strings.Contains(string(b), marker) {
					return d, nil
				}
			}
		}
	}
}

// wait waits for the daemon to exit, successfully, for at most timeout.
func (d *daemon) wait(ctx context.Context, timeout time.Duration) error {
	select {
	case <-d.done:
	case <-time.After(timeout):
		d.stop()
		return fmt.Errorf("still running after %v: killed", timeout)
	case <-ctx.Done():
		d.stop()
		return errors.New("interrupted")
	}
	if d.err != nil {
		return fmt.Errorf("%v: %s", d.err, tail(d.out))
	}
	return nil
}

// stop kills the daemon (by its PID) unless it has exited, and reaps it.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFile waits for path to exist (the workload renames it into place
// whole) and returns its content.
func waitFile(ctx context.Context, path string, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not written after %v", filepath.Base(path), timeout)
		}
		if ctx.Err() != nil {
			return nil, errors.New("interrupted")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// DaemonSummary is gockpt's lazy-pages summary line:
//
//	Lazy pages: all in place T after restore connected: N pages (X MiB) of K tasks; F faults answered (median M, p99 P), ...
type DaemonSummary struct {
	OK          bool
	InPlace     time.Duration
	Pages       int
	Faults      int
	Median, P99 time.Duration
	Pushed      int
}

var summaryRE = regexp.MustCompile(`Lazy pages: all in place (\S+) after restore connected: (\d+) pages .*?; (\d+) faults answered \(median (\S+), p99 (\S+)\), (\d+) pages pushed`)

// ParseDaemonSummary finds gockpt's summary line in the daemon's output.
func ParseDaemonSummary(out string) (DaemonSummary, error) {
	m := summaryRE.FindStringSubmatch(out)
	if m == nil {
		return DaemonSummary{}, errors.New("no \"Lazy pages: all in place\" line")
	}
	var d DaemonSummary
	var errs []error
	dur := func(s string) time.Duration {
		v, err := time.ParseDuration(s)
		errs = append(errs, err)
		return v
	}
	num := func(s string) int {
		v, err := strconv.Atoi(s)
		errs = append(errs, err)
		return v
	}
	d.InPlace, d.Pages, d.Faults = dur(m[1]), num(m[2]), num(m[3])
	d.Median, d.P99, d.Pushed = dur(m[4]), dur(m[5]), num(m[6])
	if err := errors.Join(errs...); err != nil {
		return DaemonSummary{}, fmt.Errorf("summary line %q: %w", m[0], err)
	}
	d.OK = true
	return d, nil
}

// TouchStats is what the workload's timed read of every page found.
type TouchStats struct {
	Pages       int    // pages read, one read each
	Start, End  uint64 // the pass's first read and end, CLOCK_REALTIME ns
	Pass        time.Duration
	Median, P99 time.Duration // of every read
	Faults      int           // reads that took a page fault: waited for the daemon
	FaultMedian time.Duration // of those reads
	FaultP99    time.Duration
}

// faultBit marks, in a touch record, a read that took a page fault.
const faultBit = 1 << 31

// ParseTouch reads workload.c's touch file: the pass's start and end
// (CLOCK_REALTIME ns, uint64 each), then one uint32 per read (ns, faultBit
// when it faulted); native byte order, which is little-endian on every
// machine the bench runs on.
func ParseTouch(b []byte) (TouchStats, error) {
	var t TouchStats
	if len(b) < 16 || (len(b)-16)%4 != 0 {
		return t, fmt.Errorf("touch file of %d bytes: want 16 + 4 per page", len(b))
	}
	t.Start, t.End = le64(b), le64(b[8:])
	if t.End < t.Start {
		return t, fmt.Errorf("touch file: pass ends at %d, before it starts at %d", t.End, t.Start)
	}
	t.Pass = time.Duration(t.End - t.Start)
	var all, faults []int64
	for off := 16; off < len(b); off += 4 {
		v := le32(b[off:])
		ns := int64(v &^ faultBit)
		all = append(all, ns)
		if v&faultBit != 0 {
			faults = append(faults, ns)
		}
	}
	t.Pages, t.Faults = len(all), len(faults)
	t.Median, t.P99 = time.Duration(MedianInt(all)), time.Duration(Percentile(all, 99))
	t.FaultMedian, t.FaultP99 = time.Duration(MedianInt(faults)), time.Duration(Percentile(faults, 99))
	return t, nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

// Percentile returns the p-th percentile of xs, nearest rank; zero for none.
func Percentile(xs []int64, p float64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(p/100*float64(len(s)) + 0.999999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// describeLazy is the progress line of one run.
func describeLazy(s LazySample) string {
	if !s.OK() {
		return "FAIL: " + oneLine(s.Err)
	}
	inPlace := "never while it runs"
	if s.InPlace > 0 {
		inPlace = "after " + fmtDur(s.InPlace)
	}
	d := fmt.Sprintf("runs after %s, all in place %s; workload: read its pages from %s to %s, %d faults (median %s, p99 %s), every read median %s p99 %s",
		fmtDur(s.Run), inPlace, fmtDur(s.PassStart), fmtDur(s.PassEnd), s.Touch.Faults, fmtDur(s.Touch.FaultMedian),
		fmtDur(s.Touch.FaultP99), fmtDur(s.Touch.Median), fmtDur(s.Touch.P99))
	if s.Daemon.OK {
		d += fmt.Sprintf("; daemon: %d faults (median %s, p99 %s), %d pages pushed",
			s.Daemon.Faults, fmtDur(s.Daemon.Median), fmtDur(s.Daemon.P99), s.Daemon.Pushed)
		if s.Daemon.InPlace > 0 {
			d += fmt.Sprintf(", in place %s after restore connected", fmtDur(s.Daemon.InPlace))
		}
	}
	return d + "; checked"
}

// runLazy is criubench -lazy: every size, setting and run, the two tools
// alternating run by run; prints the tables of lazyreport.go.
func runLazy(c config) error {
	wls, err := Select(LazyWorkloads, c.only, c.quick)
	if err != nil {
		return err
	}
	sets, err := SelectSettings(c.lazySets)
	if err != nil {
		return err
	}
	storages, err := Storages(c.storage)
	if err != nil {
		return err
	}
	tools, err := prepare(c)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "criubench-lazy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := BuildWorkload(work)
	if err != nil {
		return err
	}
	imgRoot := map[string]string{}
	for _, st := range storages {
		base := c.tmpfsDir
		if st == "disk" {
			base = c.diskDir
		}
		d, err := os.MkdirTemp(base, "criubench-lazy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		imgRoot[st] = d
	}
	pipeBefore, err := os.ReadFile(pipeMaxSize)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &Runner{Workload: bin, WorkDir: work, ToolTimeout: c.toolTimeout, GoneTimeout: time.Minute, Ctx: ctx, DumpArgs: strings.Fields(c.dumpArgs)}
	header := Header(tools, c.reps) + "; post-copy: dump, then lazy-pages + restore --lazy-pages -d, images on " + strings.Join(storages, " and ")
	if c.dumpArgs != "" {
		header += "; dump options " + strings.Join(r.DumpArgs, " ")
	}
	if r.GockptLazyArgs = strings.Fields(c.lazyArgs); len(r.GockptLazyArgs) > 0 {
		header += "; gockpt lazy-pages " + strings.Join(r.GockptLazyArgs, " ")
	}
	var notes []string
	for _, set := range sets {
		if set.PageServer {
			notes = append(notes, fmt.Sprintf("fs.pipe-max-size is %s here; the bench raised it to %d for each of CRIU's loopback runs (its page server cannot grow its pipes past it without CAP_SYS_RESOURCE) and put it back after each; gockpt ran with %s.",
				strings.TrimSpace(string(pipeBefore)), CRIUPipeMax, strings.TrimSpace(string(pipeBefore))))
		}
	}
	loadBefore := loadavg()
	fmt.Fprintln(os.Stderr, header)
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, n)
	}

	res := map[string]LazyResults{}
	total := len(storages) * len(wls) * len(sets) * c.reps * len(tools)
	done := 0
	start := time.Now()
run:
	for _, st := range storages {
		res[st] = LazyResults{}
		for _, wl := range wls {
			for _, set := range sets {
				for rep := 1; rep <= c.reps; rep++ {
					for _, t := range tools {
						if ctx.Err() != nil {
							break run
						}
						s := r.RunLazy(t, wl, set, filepath.Join(imgRoot[st], "img"))
						done++
						fmt.Fprintf(os.Stderr, "[%d/%d %s] %s %s %s run %d/%d %s: %s\n", done, total,
							time.Since(start).Round(time.Second), st, wl.Name, set.Name, rep, c.reps, t.Name, describeLazy(s))
						if ctx.Err() != nil {
							break run
						}
						k := LazyKey{wl.Name, set.Name, t.Name}
						res[st][k] = append(res[st][k], s)
					}
				}
			}
		}
	}
	// Every CRIU loopback run put fs.pipe-max-size back; make sure of it
	// (only a value of ours is put back: another program may have set it).
	var sysctlErr error
	if now, err := os.ReadFile(pipeMaxSize); err != nil {
		sysctlErr = err
	} else if string(now) != string(pipeBefore) {
		sysctlErr = fmt.Errorf("fs.pipe-max-size is %s after the runs, %s before", strings.TrimSpace(string(now)), strings.TrimSpace(string(pipeBefore)))
		if strings.TrimSpace(string(now)) == strconv.Itoa(CRIUPipeMax) {
			if err := os.WriteFile(pipeMaxSize, pipeBefore, 0o644); err != nil {
				sysctlErr = fmt.Errorf("%w; putting it back: %v", sysctlErr, err)
			} else {
				sysctlErr = fmt.Errorf("%w: put back", sysctlErr)
			}
		}
	}

	// What the page servers saw: another program may change the sysctl too.
	seen := map[string]map[string]bool{}
	for _, rs := range res {
		for k, ss := range rs {
			for _, s := range ss {
				if s.PipeMax != "" {
					if seen[k.Tool] == nil {
						seen[k.Tool] = map[string]bool{}
					}
					seen[k.Tool][s.PipeMax] = true
				}
			}
		}
	}
	for _, t := range tools {
		if len(seen[t.Name]) > 0 {
			var vs []string
			for v := range seen[t.Name] {
				vs = append(vs, v)
			}
			sort.Strings(vs)
			notes = append(notes, fmt.Sprintf("fs.pipe-max-size as %s's page server started: %s.", t.Name, strings.Join(vs, ", ")))
		}
	}
	notes = append(notes, "Load average (1, 5, 15 min) before the runs: "+loadBefore+"; after: "+loadavg()+".")

	var b strings.Builder
	fmt.Fprintf(&b, "%s; %d runs in %s\n\n", header, done, time.Since(start).Round(time.Second))
	for _, n := range notes {
		fmt.Fprintf(&b, "%s\n\n", n)
	}
	for _, st := range storages {
		if len(storages) > 1 {
			fmt.Fprintf(&b, "### images on %s\n\n", st)
		}
		WriteLazyTable(&b, res[st], wls, sets, tools[0].Name, tools[1].Name)
		b.WriteString("\n")
	}
	fmt.Print(b.String())
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if sysctlErr != nil {
		return sysctlErr
	}
	if ctx.Err() != nil {
		return errors.New("interrupted: the tables hold the runs that finished")
	}
	return nil
}

// loadavg is the machine's load average, 1, 5 and 15 minutes: other
// programs running beside the bench make its numbers noisy.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
