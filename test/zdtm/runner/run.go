package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/netlock"
)

// Config is what every run shares.
type Config struct {
	Gockpt  string
	Timeout time.Duration
	Verbose bool
	// CRIU is the CRIU binary the criu-* modes restore with; CRIUMissing,
	// when not empty, says why those modes are skipped.
	CRIU        string
	CRIUMissing string
}

// Run is one test in one mode: its work directory, its tree and the images
// taken of it.
type Run struct {
	cfg      *Config
	test     *Test
	mode     *Mode
	dir      string
	out      string
	pidfile  string
	deadline time.Time

	root   int
	before *Tree // as set up, before any checkpoint
	last   *Tree // the tree most recently seen alive
	images []string
	stats  map[string]int // memStats of the latest pre-dump or dump, nil without --display-stats
	// lazyd is the lazy-pages daemon of a lazy mode's restore (lazy.go).
	lazyd    *pageServer
	lazySock string // where it listens
	// notes are said on the PASS line.
	notes []string
}

type checkpointOpts struct {
	LeaveRunning bool
	// Extra dump options: pre-dump chains pass --track-mem and
	// --prev-images-dir ../img-N, page-server modes --page-server --address --port.
	Extra []string
}

type preDumpOpts struct {
	// Extra pre-dump options: --track-mem, --prev-images-dir ../img-N,
	// --track-mem-backend.
	Extra []string
}

type restoreOpts struct {
	// Extra restore options: --lazy-pages and --address in the lazy modes.
	Extra []string
}

func (r *Run) logf(format string, args ...any) {
	if r.cfg.Verbose {
		fmt.Printf("    "+format+"\n", args...)
	}
}

// Execute runs the whole test: start, checkpoint as the mode says, SIGTERM,
// judge. Everything started is killed by PID on the way out.
func (r *Run) Execute() (err error) {
	r.deadline = time.Now().Add(r.cfg.Timeout)
	defer func() {
		if kerr := killAll(startTimes(r.last), time.Now().Add(10*time.Second)); kerr != nil && err == nil {
			err = fmt.Errorf("cleanup: %w", kerr)
		}
		// A lazy-pages daemon still running goes after its tree (which
		// would read zeros where its lazy pages were, had it gone first).
		if r.lazyd != nil && !r.lazyd.ended {
			if kerr := r.lazyd.kill(); kerr != nil && err == nil {
				err = fmt.Errorf("cleanup: lazy-pages daemon: %w", kerr)
			}
		}
		// A network lock left by the tree's dump (gockpt's nftables
		// table, named after the root) goes too; after a passing run
		// there must be none.
		if r.root > 0 && slices.Contains(r.test.Opts, "--tcp-established") {
			if tables, _ := netlock.Tables(); slices.Contains(tables, netlock.TablePrefix+strconv.Itoa(r.root)) {
				netlock.Unlock(strconv.Itoa(r.root))
				if err == nil {
					err = fmt.Errorf("the network lock (nftables table inet %s%d) was left behind", netlock.TablePrefix, r.root)
				}
			}
		}
	}()
	if err := r.start(); err != nil {
		return err
	}
	if err := r.mode.CR(r); err != nil {
		return err
	}
	return r.finish()
}

func (r *Run) start() error {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/"}
	env = append(env, r.test.Env...)
	argv := append(append([]string{}, r.test.Argv...), "-p", r.pidfile)
	r.logf("start: %s (in %s)", strings.Join(argv, " "), r.dir)
	lpid, err := startLauncher(argv, env, r.dir, r.out)
	if err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	ws, ok, err := waitExit(lpid, r.deadline)
	if err != nil {
		return fmt.Errorf("test not ready: launcher: %w", err)
	}
	if ok && ws.Exited() && ws.ExitStatus() == skipStatus {
		return &SkipError{Reason: skipReason(r.output())}
	}
	if ok && (!ws.Exited() || ws.ExitStatus() != 0) {
		return fmt.Errorf("launcher failed (status %s): %s", describe(ws), r.output())
	}
	b, err := os.ReadFile(r.pidfile)
	if err != nil {
		return fmt.Errorf("test not ready: %w; its output: %s", err, r.output())
	}
	if r.root, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return fmt.Errorf("pid file %q: %w", b, err)
	}
	if r.before, err = r.settled(); err != nil {
		return err
	}
	r.last = r.before
	r.logf("ready: root %d, tree %v", r.root, sortedKeys(r.before.Tasks))
	return r.checkCreds(r.before)
}

// settled looks at the tree until two looks 10 ms apart agree (for at most
// half a second, then the last look stands). The launcher exits as soon as
// the root has written its ready byte, and the root closes its end of that
// pipe only just after (zt_ready): a single look can catch the fd still
// open, and every later look, or the restored tree, then "lost" it.
func (r *Run) settled() (*Tree, error) {
	prev, err := CollectTree(r.root)
	if err != nil {
		return nil, err
	}
	for until := time.Now().Add(500 * time.Millisecond); time.Now().Before(until); {
		time.Sleep(10 * time.Millisecond)
		cur, err := CollectTree(r.root)
		if err != nil {
			return nil, err
		}
		d := DiffTrees(prev, cur, r.diffOptions())
		if len(d) == 0 {
			return cur, nil
		}
		r.logf("tree still settling after ready:\n%s", indent(strings.Join(d, "\n"), "      "))
		prev = cur
	}
	return prev, nil
}

// checkCreds checks the uid/gid the header declares against /proc.
func (r *Run) checkCreds(t *Tree) error {
	var root map[string]string
	if task := t.Tasks[t.Root]; task != nil {
		root = task.ThreadStatus[t.Root]
	}
	for _, c := range []struct {
		key  string
		want int
	}{{"Uid", r.test.UID}, {"Gid", r.test.GID}} {
		if c.want < 0 || root == nil {
			continue
		}
		for _, f := range strings.Fields(root[c.key]) {
			if f != strconv.Itoa(c.want) {
				return fmt.Errorf("task %d: %s %q, header says %d", t.Root, c.key, root[c.key], c.want)
			}
		}
	}
	return nil
}

func (r *Run) gockpt(name string, args ...string) error {
	_, err := r.gockptOut(name, args...)
	return err
}

// gockptOut runs gockpt and returns its output (stdout and stderr).
func (r *Run) gockptOut(name string, args ...string) (string, error) {
	return r.toolOut("gockpt", r.cfg.Gockpt, name, args...)
}

// toolOut runs bin (gockpt, or CRIU in the criu-* modes) and returns its
// output (stdout and stderr); errors start with "tool name".
func (r *Run) toolOut(tool, bin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithDeadline(context.Background(), r.deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	r.logf("run: %s %s", bin, strings.Join(args, " "))
	start := time.Now()
	err := cmd.Run()
	r.logf("%s took %v", name, time.Since(start).Round(time.Millisecond))
	if r.cfg.Verbose && out.Len() > 0 {
		fmt.Print(indent(out.String(), "      "))
	}
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s %s: killed at the test's time limit (%v): %s", tool, name, r.cfg.Timeout, lastLines(out.String(), 5))
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", tool, name, err, lastLines(out.String(), 5))
	}
	return out.String(), nil
}

func (r *Run) diffOptions() DiffOptions {
	return DiffOptions{DynamicThreads: r.test.DynamicThreads, CRIUDumped: r.mode != nil && r.mode.CRIUDumps}
}

// newImagesDir names the next images directory, img-N in the run's
// directory, N counting every pre-dump and dump of the run from 1: the last
// one is always the latest images.
func (r *Run) newImagesDir() string {
	img := r.nextImagesDir()
	r.images = append(r.images, img)
	return img
}

// nextImagesDir names the images directory the next pre-dump or dump will
// write (newImagesDir's next answer), for a page server to wait there.
func (r *Run) nextImagesDir() string {
	return filepath.Join(r.dir, fmt.Sprintf("img-%d", len(r.images)+1))
}

// viaPageServer runs one pre-dump or dump, step, given the options that
// send its pages to a page server in the page-server modes (through
// throughPageServer), none in the others. opts are the step's own options,
// whose --prev-images-dir the page server is given too.
func (r *Run) viaPageServer(opts []string, step func(extra []string) error) error {
	if r.mode == nil || r.mode.PageServer == "" {
		return step(nil)
	}
	return r.throughPageServer(optValue(opts, "--prev-images-dir"), step)
}

// optValue returns the value of the last "name value" pair in opts, "" if
// there is none.
func optValue(opts []string, name string) string {
	v := ""
	for i, o := range opts {
		if o == name && i+1 < len(opts) {
			v = opts[i+1]
		}
	}
	return v
}

// prevImagesOpts chains the next pre-dump or dump to the latest images
// directory: --prev-images-dir ../img-N, relative to the new images
// directory as in CRIU. None before the first iteration.
func (r *Run) prevImagesOpts() []string {
	if len(r.images) == 0 {
		return nil
	}
	return []string{"--prev-images-dir", "../" + filepath.Base(r.images[len(r.images)-1])}
}

// PreDump saves the tree's memory into a new images directory with gockpt
// pre-dump (through a page server in the page-server modes). The tree must
// run on, unchanged: the same PIDs and threads, and the same maps, fds and
// the rest the runner compares (a pre-dump must leave nothing behind in its
// target).
func (r *Run) PreDump(o preDumpOpts) error {
	return r.viaPageServer(o.Extra, func(ps []string) error {
		return r.preDump(append(slices.Clip(o.Extra), ps...))
	})
}

func (r *Run) preDump(extra []string) error {
	img := r.newImagesDir()
	args := []string{"pre-dump", "-t", strconv.Itoa(r.root), "-D", img, "-o", "pre-dump.log", "-v4", "--display-stats"}
	args = append(args, extra...)
	now, err := CollectTree(r.root)
	if err != nil {
		return fmt.Errorf("before pre-dump: %w", err)
	}
	r.last = now
	out, err := r.gockptOut("pre-dump", args...)
	if err != nil {
		return err
	}
	r.stats = memStats(out)
	r.logf("pre-dump into %s: %s", filepath.Base(img), formatStats(r.stats))
	cur, d, err := r.lookUntilSame(now)
	if err != nil {
		return fmt.Errorf("after pre-dump (the tree must run on): %w", err)
	}
	if len(d) > 0 {
		return fmt.Errorf("pre-dump changed the running tree:\n%s", strings.Join(d, "\n"))
	}
	r.last = cur
	return checkParentLink(img, extra)
}

// checkParentLink checks the "parent" symlink a pre-dump or dump with
// --prev-images-dir leaves in its images directory: the restore follows it.
func checkParentLink(img string, opts []string) error {
	prev := optValue(opts, "--prev-images-dir")
	if prev == "" {
		return nil
	}
	link := filepath.Join(img, "parent")
	target, err := os.Readlink(link)
	if err != nil {
		return fmt.Errorf("--prev-images-dir %s: no parent symlink: %w", prev, err)
	}
	got, err1 := os.Stat(link)
	want, err2 := os.Stat(filepath.Join(img, prev))
	if err1 != nil || err2 != nil || !os.SameFile(got, want) {
		return fmt.Errorf("--prev-images-dir %s: parent symlink points at %q", prev, target)
	}
	return nil
}

var statsLine = regexp.MustCompile(`(?m)^Memory pages (scanned|skipped from parent|written): (\d+)`)

// memStats picks the memory lines out of --display-stats output: "scanned",
// "skipped from parent", "written"; nil if there are none.
func memStats(out string) map[string]int {
	var st map[string]int
	for _, m := range statsLine.FindAllStringSubmatch(out, -1) {
		if st == nil {
			st = map[string]int{}
		}
		st[m[1]], _ = strconv.Atoi(m[2])
	}
	return st
}

func formatStats(st map[string]int) string {
	if st == nil {
		return "no memory statistics in the output"
	}
	return fmt.Sprintf("pages scanned %d, written %d, left in the parent images %d", st["scanned"], st["written"], st["skipped from parent"])
}

// checkNothingLeft checks that nothing gockpt started (the keeper of
// pre-dump --track-mem) still runs below the runner once the tree is gone.
func (r *Run) checkNothingLeft(when string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		reap()
		var left []string
		for _, pid := range treePIDs(os.Getpid()) {
			if pid != os.Getpid() && alive(pid) {
				cmd, _ := readString(fmt.Sprintf("/proc/%d/cmdline", pid))
				left = append(left, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(strings.ReplaceAll(cmd, "\x00", " "))))
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s, still running below the runner: %s", when, strings.Join(left, ", "))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Checkpoint dumps the tree into a new images directory (its pages through
// a page server in the page-server modes).
func (r *Run) Checkpoint(o checkpointOpts) error {
	return r.viaPageServer(o.Extra, func(ps []string) error {
		o.Extra = append(slices.Clip(o.Extra), ps...)
		return r.checkpoint(o)
	})
}

func (r *Run) checkpoint(o checkpointOpts) error {
	img := r.newImagesDir()
	args := []string{"dump", "-t", strconv.Itoa(r.root), "-D", img, "-o", "dump.log", "-v4"}
	if o.LeaveRunning {
		args = append(args, "--leave-running")
	}
	args = append(args, o.Extra...)
	args = append(args, r.test.Opts...)
	// The tree as it is right now: these PIDs must disappear (or stay) after the dump.
	now, err := CollectTree(r.root)
	if err != nil {
		return fmt.Errorf("before dump: %w", err)
	}
	r.last = now
	out, err := r.gockptOut("dump", args...)
	if err != nil {
		return err
	}
	if r.stats = memStats(out); r.stats != nil {
		r.logf("dump into %s: %s", filepath.Base(img), formatStats(r.stats))
	}
	if err := checkParentLink(img, o.Extra); err != nil {
		return err
	}
	if o.LeaveRunning {
		_, d, err := r.lookUntilSame(now)
		if err != nil {
			return fmt.Errorf("after dump --leave-running: %w", err)
		}
		if len(d) > 0 {
			return fmt.Errorf("dump --leave-running changed the running tree:\n%s", strings.Join(d, "\n"))
		}
		return nil
	}
	if err := waitGone(sortedKeys(now.Tasks), time.Now().Add(10*time.Second)); err != nil {
		return fmt.Errorf("after dump (which should kill the tree): %w", err)
	}
	return nil
}

// KillTree kills the running tree by PID (snapshot mode: the original goes
// away, the restored copy takes its place).
func (r *Run) KillTree() error {
	return killAll(startTimes(r.last), r.deadline)
}

// RestoreAndVerify restores the latest images detached and compares the
// restored tree with the tree as it was set up.
func (r *Run) RestoreAndVerify(o restoreOpts) error {
	img := r.images[len(r.images)-1]
	pidfile := filepath.Join(img, "restore.pid")
	args := append([]string{"restore", "-D", img, "-d", "--pidfile", pidfile, "-o", "restore.log", "-v4"}, o.Extra...)
	args = append(args, r.test.Opts...)
	if err := r.gockpt("restore", args...); err != nil {
		return err
	}
	return r.verifyRestored(pidfile)
}

// verifyRestored checks the pid file a detached restore wrote and compares
// the restored tree with the tree as it was set up.
func (r *Run) verifyRestored(pidfile string) error {
	reap()
	if b, err := os.ReadFile(pidfile); err != nil {
		return fmt.Errorf("restore --pidfile: %w", err)
	} else if p, _ := strconv.Atoi(strings.TrimSpace(string(b))); p != r.root {
		return fmt.Errorf("restore --pidfile says %q, want %d", strings.TrimSpace(string(b)), r.root)
	}
	return r.Verify("restored tree")
}

// Verify compares the tree as it is now with the tree as it was set up.
func (r *Run) Verify(what string) error {
	got, d, err := r.lookUntilSame(r.before)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	r.last = got
	if err := r.checkCreds(got); err != nil {
		return err
	}
	if len(d) > 0 {
		return fmt.Errorf("%s differs:\n%s", what, strings.Join(d, "\n"))
	}
	return nil
}

// lookUntilSame looks at the tree and compares it with want (and with the
// tree as it was set up): a difference must last to count. A task caught
// inside a signal handler shows the handler's mask for a moment (a test
// with a 20 ms timer, say), and the look before an operation may be the
// one that caught it; a real change stays for every look of 200 ms.
func (r *Run) lookUntilSame(want *Tree) (*Tree, []string, error) {
	var cur *Tree
	var d []string
	for i := 0; i < 20; i++ {
		if i > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		var err error
		if cur, err = CollectTree(r.root); err != nil {
			return nil, nil, err
		}
		if d = DiffTrees(want, cur, r.diffOptions()); len(d) == 0 {
			return cur, nil, nil
		}
		if r.before != nil && r.before != want && len(DiffTrees(r.before, cur, r.diffOptions())) == 0 {
			return cur, nil, nil
		}
		r.logf("look %d differs:\n%s", i+1, indent(strings.Join(d, "\n"), "      "))
	}
	return cur, d, nil
}

// finish sends SIGTERM to the root, waits for the test to end and judges its
// output, exit status and leftovers.
func (r *Run) finish() error {
	last, err := CollectTree(r.root)
	if err != nil {
		return fmt.Errorf("before SIGTERM: %w", err)
	}
	r.last = last
	// Statuses reaped for these PIDs belong to earlier incarnations (the
	// tree gockpt dump killed, or the original killed in snapshot mode).
	reap()
	for pid := range last.Tasks {
		delete(exits, pid)
	}
	r.logf("SIGTERM to %d", r.root)
	if err := unix.Kill(r.root, unix.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM to %d: %w", r.root, err)
	}
	ws, ok, err := waitExit(r.root, r.deadline)
	if err != nil {
		return fmt.Errorf("after SIGTERM: %w; output: %s", err, r.output())
	}
	if ok {
		r.logf("root %d ended: %s", r.root, describe(ws))
	} else {
		r.logf("root %d ended (not the runner's child: status unknown)", r.root)
	}
	// Children end when the root has collected them; anything still there is a leak.
	time.Sleep(20 * time.Millisecond)
	reap()
	// A lazy-pages daemon without background copies served the test's
	// faults while it checked its memory, and ends with the tree.
	lazyErr := r.endLazy()
	var left []string
	for _, pid := range sortedKeys(last.Tasks) {
		if t := last.Tasks[pid]; startTime(pid) == t.StartTime && alive(pid) {
			left = append(left, strconv.Itoa(pid))
		}
	}
	verdict := Judge(r.output())
	if verdict != "" {
		if lazyErr != nil {
			return fmt.Errorf("%s\n%w", verdict, lazyErr)
		}
		return fmt.Errorf("%s", verdict)
	}
	if lazyErr != nil {
		return lazyErr
	}
	if ok && ws.Exited() && ws.ExitStatus() == skipStatus {
		return &SkipError{Reason: skipReason(r.output())}
	}
	if ok && (!ws.Exited() || ws.ExitStatus() != 0) {
		return fmt.Errorf("test printed PASS but ended with status %s", describe(ws))
	}
	// Anything else still below the runner came from this test too.
	for _, pid := range treePIDs(os.Getpid()) {
		if pid != os.Getpid() && alive(pid) && last.Tasks[pid] == nil {
			left = append(left, strconv.Itoa(pid))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("left running after the test ended: %s", strings.Join(left, " "))
	}
	return nil
}

// Judge returns "" if the output says PASS and nothing failed, else why not.
func Judge(output string) string {
	var fails []string
	pass := false
	for _, line := range strings.Split(output, "\n") {
		switch {
		case strings.HasPrefix(line, "FAIL"):
			fails = append(fails, line)
		case line == "PASS":
			pass = true
		}
	}
	if len(fails) > 0 {
		return strings.Join(fails, "\n")
	}
	if !pass {
		return "no PASS in the test's output: " + lastLines(output, 5)
	}
	return ""
}

func (r *Run) output() string {
	b, _ := os.ReadFile(r.out)
	return strings.TrimSpace(string(b))
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by signal %d (%v)", int(ws.Signal()), ws.Signal())
	}
	return fmt.Sprintf("0x%x", uint32(ws))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s, pfx string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pfx + l + "\n")
	}
	return b.String()
}

// skipStatus is the launcher's exit status when the test called zt_skip:
// this machine cannot set up its state (ZT_SKIP_STATUS in zdtmtst.h).
const skipStatus = 77

// SkipError says a test could not set up its state here, and why; the run
// counts as skipped.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// skipReason is what the test said after "SKIP: " (its last such line).
func skipReason(out string) string {
	reason := "the test could not set up its state here (no SKIP line)"
	for _, l := range strings.Split(out, "\n") {
		if r, ok := strings.CutPrefix(l, "SKIP: "); ok {
			reason = r
		}
	}
	return reason
}
