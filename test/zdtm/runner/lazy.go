package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The lazy modes restore post-copy, as CRIU's zdtm --lazy-pages does: the
// runner starts a lazy-pages daemon for the restore (a child of the
// runner, like a page server: see pageserver.go), restores with
// --lazy-pages, and the tree runs while its lazy pages (private anonymous
// memory the dump marked PE_LAZY) are still with the daemon. The daemon
// takes one restore and exits 0 once every lazy page is in place, or every
// task it serves has exited; its exit status, its log (no "Error" line)
// and its summary line are checked. It is killed by PID on any failure.

// LazyPages says how a lazy mode restores (Mode.Lazy). A new post-copy
// mode is one entry of the modes table with one of these.
type LazyPages struct {
	// Push is the daemon's --push-pages: "" its default (pages it pushes
	// in the background: it ends once they are all in place, which the
	// runner waits for before SIGTERM, so the test checks memory that
	// is all there), "0" none: every lazy page comes by fault, while the
	// test checks its memory after SIGTERM, and the daemon ends when the
	// tree has ended.
	Push string
	// MakeLazy: the restore's images are made by `gockpt image
	// make-lazy` from the dump's into the next images directory (every
	// image but the lazy pages' data); the daemon serves the dump's
	// directory, on a socket in the run's directory given to both with
	// --address (their work directories differ).
	MakeLazy bool
	// From is where the daemon takes the pages from: lazyFromImages, the
	// dump's images directory (its -D). To come: lazy-pages --page-server
	// --address A --port N, fed by a page server the runner starts on the
	// images (startGockptPageServer with page-server --lazy-pages), or by
	// the dump itself (dump --lazy-pages --port N, which serves its
	// frozen tree's pages until they are all fetched): such a mode adds
	// a From value, the daemon options lazyDaemonArgs gives for it, and
	// the process that serves them, waited for and checked like a page
	// server.
	From string
	// ZeroTasksOK: a daemon that served no task passes (the run's output
	// says so). Else it fails the run: the mode would have proved nothing
	// about post-copy.
	ZeroTasksOK bool
}

// Where the daemon takes the pages from (LazyPages.From).
const lazyFromImages = ""

// lazyPagesLog is the daemon's log, in the images directory it serves.
const lazyPagesLog = "lazy-pages.log"

// lazySocketName is where the daemon listens by default: in its work
// directory, which is its images directory here (gockpt's and CRIU's
// name).
const lazySocketName = "lazy-pages.socket"

var lazyListeningLine = regexp.MustCompile(`(?m)^lazy-pages daemon listening on (.+)$`)

// lazyCycle is a dump (which kills the tree), then a lazy restore.
func (r *Run) lazyCycle() error {
	if err := r.Checkpoint(checkpointOpts{}); err != nil {
		return err
	}
	return r.LazyRestoreAndVerify()
}

// LazyRestoreAndVerify restores the latest images post-copy as the mode's
// Lazy says, with a lazy-pages daemon on them, and compares the restored
// tree with the tree as it was set up. With background copies it then
// waits for the daemon to end (every page in place) and checks it; without
// them finish does, once the tree has ended.
func (r *Run) LazyRestoreAndVerify() error {
	lp := r.mode.Lazy
	if lp == nil {
		return fmt.Errorf("mode %s is not a lazy mode", r.mode.Name)
	}
	if lp.From != lazyFromImages {
		return fmt.Errorf("mode %s: lazy pages from %q: this runner knows only a daemon on the images directory", r.mode.Name, lp.From)
	}
	src := r.images[len(r.images)-1]
	sock := filepath.Join(src, lazySocketName)
	var restoreExtra []string
	if lp.MakeLazy {
		dst := r.newImagesDir()
		out, err := r.gockptOut("image make-lazy", "image", "make-lazy", src, dst)
		if err != nil {
			return err
		}
		r.logf("make-lazy %s %s: %s", filepath.Base(src), filepath.Base(dst), lastLines(out, 3))
		sock = filepath.Join(r.dir, lazySocketName)
		restoreExtra = append(restoreExtra, "--address", sock)
	}
	d, err := r.startLazyDaemon(src, sock, lazyDaemonArgs(lp, src, sock))
	if err != nil {
		return err
	}
	r.lazyd, r.lazySock = d, sock
	restoreExtra = append(restoreExtra, "--lazy-pages")
	if err := r.RestoreAndVerify(restoreOpts{Extra: restoreExtra}); err != nil {
		if d.ended {
			return fmt.Errorf("%w\n%s", err, d.logTail())
		}
		// A restore that failed may have left the daemon waiting, or a
		// tree whose faults it answers: it is killed either way, and
		// what it said goes with the error.
		if kerr := d.kill(); kerr != nil {
			return fmt.Errorf("%w\n(and the lazy-pages daemon: %v)", err, kerr)
		}
		return fmt.Errorf("%w\n%s", err, d.logTail())
	}
	if lp.Push == "0" {
		return nil // it ends with the tree: finish waits for it
	}
	return r.endLazy()
}

// lazyDaemonArgs is the daemon's command line for the mode.
func lazyDaemonArgs(lp *LazyPages, src, sock string) []string {
	args := []string{"lazy-pages", "-D", src, "-o", lazyPagesLog, "-v4"}
	if lp.MakeLazy {
		args = append(args, "--address", sock)
	}
	if lp.Push != "" {
		args = append(args, "--push-pages", lp.Push)
	}
	return args
}

// startLazyDaemon starts gockpt lazy-pages serving img and returns once it
// says it listens on sock.
func (r *Run) startLazyDaemon(img, sock string, args []string) (*pageServer, error) {
	d := &pageServer{tool: gockptPageServer, name: "gockpt lazy-pages", img: img,
		log: filepath.Join(img, lazyPagesLog), out: img + ".lazy-pages.out"}
	if r.mode.Lazy.Push == "0" {
		d.after = "the restored tree ended"
	} else {
		d.after = "the restore (pushing every lazy page in place)"
	}
	if err := r.spawn(d, r.cfg.Gockpt, args, nil); err != nil {
		return nil, err
	}
	deadline := minTime(r.deadline, time.Now().Add(psReady))
	for {
		b, _ := os.ReadFile(d.out)
		if m := lazyListeningLine.FindSubmatch(b); m != nil {
			if got := string(m[1]); got != sock {
				kerr := d.kill()
				return nil, fmt.Errorf("gockpt lazy-pages listens on %s, want %s (killed: %v)", got, sock, kerr)
			}
			r.logf("lazy-pages daemon %d listens on %s", d.pid, sock)
			return d, nil
		}
		if ended, err := d.poll(); err != nil {
			return nil, err
		} else if ended != "" {
			return nil, fmt.Errorf("gockpt lazy-pages %s before it listened: %s\n%s", ended, lastLines(string(b), 5), d.logTail())
		}
		if time.Now().After(deadline) {
			kerr := d.kill()
			return nil, fmt.Errorf("gockpt lazy-pages did not say it listens within %v (killed: %v): %s", psReady, kerr, lastLines(string(b), 5))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// endLazy waits for the lazy-pages daemon to end (by the run's deadline,
// else it is killed) and checks it: exit 0, no error in its log, its
// summary line, at least one task served (unless the mode allows none),
// and its socket removed.
func (r *Run) endLazy() error {
	d := r.lazyd
	if d == nil || d.ended {
		return nil
	}
	if err := d.wait(r.deadline, r.cfg.Timeout); err != nil {
		return err
	}
	out, _ := os.ReadFile(d.out)
	s, err := parseLazySummary(string(out))
	if err != nil {
		return fmt.Errorf("gockpt lazy-pages exited 0: %w\n%s", err, d.logTail())
	}
	r.logf("lazy-pages daemon: %s", s.Line)
	if s.Tasks == 0 {
		if !r.mode.Lazy.ZeroTasksOK {
			return fmt.Errorf("gockpt lazy-pages served no task (the restore left it no lazy page: post-copy was not tried): %s", s.Line)
		}
		r.note("the lazy-pages daemon served no task: the final dump left no lazy page")
	}
	if given := givenUp(d.log); given != "" {
		return fmt.Errorf("gockpt lazy-pages exited 0 but gave lazy pages up (the tasks read zeros there, not their data): %s:\n%s", d.log, given)
	}
	if _, err := os.Lstat(r.lazySock); err == nil {
		return fmt.Errorf("gockpt lazy-pages left its socket %s behind", r.lazySock)
	}
	return nil
}

// note is said on the run's PASS line (and at once with -v).
func (r *Run) note(line string) {
	r.logf("%s", line)
	r.notes = append(r.notes, line)
}

// lazySummary is the daemon's last line.
type lazySummary struct {
	Line    string
	Took    time.Duration
	Pages   uint64
	Tasks   int
	Faults  int
	Median  time.Duration
	P99     time.Duration
	Pushed  uint64
	Dropped uint64
}

var lazySummaryLine = regexp.MustCompile(`(?m)^Lazy pages: all in place (\S+) after restore connected: (\d+) pages \([\d.]+ MiB\) of (\d+) tasks; (\d+) faults answered \(median (\S+), p99 (\S+)\), (\d+) pages pushed ahead of faults, (\d+) dropped by the tasks first$`)

// parseLazySummary reads the summary line gockpt lazy-pages prints when
// it ends well.
func parseLazySummary(out string) (*lazySummary, error) {
	m := lazySummaryLine.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("no summary line (\"Lazy pages: all in place ...\") in its output: %s", lastLines(out, 3))
	}
	s := &lazySummary{Line: m[0]}
	var errs []error
	dur := func(v string) time.Duration {
		d, err := time.ParseDuration(v)
		errs = append(errs, err)
		return d
	}
	num := func(v string) uint64 {
		n, err := strconv.ParseUint(v, 10, 64)
		errs = append(errs, err)
		return n
	}
	s.Took = dur(m[1])
	s.Pages = num(m[2])
	s.Tasks = int(num(m[3]))
	s.Faults = int(num(m[4]))
	s.Median, s.P99 = dur(m[5]), dur(m[6])
	s.Pushed, s.Dropped = num(m[7]), num(m[8])
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("summary line %q: %w", m[0], err)
	}
	// What it put in place ahead of faults is part of what it put in place.
	if s.Pushed > s.Pages {
		return nil, fmt.Errorf("summary line %q: more pages pushed than put in place", strings.TrimSpace(m[0]))
	}
	return s, nil
}

// givenUp returns the lines of the daemon's log that say it gave lazy pages
// up without knowing why (a warning, not an error, to gockpt: the tree runs
// on), "" if none.
func givenUp(log string) string {
	b, _ := os.ReadFile(log)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "cannot be put in place") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lastLines(strings.Join(lines, "\n"), 5)
}
