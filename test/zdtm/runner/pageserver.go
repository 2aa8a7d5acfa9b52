package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// The page-server modes send the pages of every pre-dump and dump to a page
// server the runner starts for that iteration, as CRIU's zdtm does: the
// server listens on 127.0.0.1, writes into the same images directory as the
// dump (the dump writes everything else there), takes one session and
// exits. The runner waits for it after the dump and fails the run if it did
// not exit 0, then checks that the pages in the directory are the server's.

// Which page server receives the pages (Mode.PageServer).
const (
	gockptPageServer = "gockpt"
	criuPageServer   = "criu"
)

// pageServerLog is the page server's log, in the images directory it
// received into (gockpt's and CRIU's alike).
const pageServerLog = "page-server.log"

// firstServerPagesID is where a page server numbers its pages images
// (CRIU's up_page_ids_base, 0x10001): a pages-N.img below it was written
// by the dump itself, not received.
const firstServerPagesID = 0x10001

// pageServer is a page server the runner started: its PID (a child of the
// runner, killed by PID), the port it listens on, the images directory it
// writes into.
//
// The lazy-pages daemon of the lazy modes (lazy.go) is started, waited for
// and killed the same way: name and after say what it is and what it
// serves, log where its log is.
type pageServer struct {
	tool  string // gockptPageServer or criuPageServer
	name  string // "gockpt page-server", "gockpt lazy-pages", ...
	after string // what it ends after: "the dump", "the restored tree"
	pid   int
	start uint64 // its start time, so that a reused PID is never killed
	port  int
	img   string
	log   string // its log (page-server.log in img for page servers)
	out   string // its stdout and stderr
	ended bool
}

// newPageServer is a page server of tool on img, not started yet.
func newPageServer(tool, img string) *pageServer {
	return &pageServer{tool: tool, name: tool + " page-server", after: "the dump", img: img,
		log: filepath.Join(img, pageServerLog), out: img + ".page-server.out"}
}

// opts are the dump and pre-dump options that send the pages to
// the server.
func (ps *pageServer) opts() []string {
	return []string{"--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(ps.port)}
}

// throughPageServer runs one pre-dump or dump (step, given the options that
// send its pages to a server) with the mode's page server listening on the
// images directory the step will write, then waits for the server to end
// and checks what it wrote. prev is the step's --prev-images-dir, "" for
// none: the server is given the same (a gockpt page server checks, when
// the dump connects, that it holds the previous iteration).
func (r *Run) throughPageServer(prev string, step func(extra []string) error) error {
	img := r.nextImagesDir()
	ps, err := r.startPageServer(img, prev)
	if err != nil {
		return err
	}
	defer ps.kill()
	r.stats = nil
	if err := step(ps.opts()); err != nil {
		// A dump that failed may never have connected: the server
		// waits on, and is killed.
		if kerr := ps.kill(); kerr != nil {
			return fmt.Errorf("%w\n(and the page server: %v)", err, kerr)
		}
		return fmt.Errorf("%w\n%s", err, ps.logTail())
	}
	if err := ps.wait(r.deadline, r.cfg.Timeout); err != nil {
		return err
	}
	tasks, all, err := checkServerPages(img, r.root)
	if err != nil {
		return err
	}
	// What the dump says it wrote is what the server received (CRIU's
	// zdtm compares its stats with the pages images the same way).
	// gockpt's "Memory pages written" counts the tasks' pages and those of
	// shared anonymous memory, not those of memfds, and the pagemap-shmem
	// images of both look alike: it must lie between the two sums.
	if w := uint64(r.stats["written"]); r.stats != nil && (w < tasks || w > all) {
		return fmt.Errorf("the dump says it wrote %d pages, the page server's pages images in %s hold %d for the tasks and %d in all", w, filepath.Base(img), tasks, all)
	}
	return nil
}

// startPageServer starts the mode's page server on img and returns once it
// listens.
func (r *Run) startPageServer(img, prev string) (*pageServer, error) {
	if r.mode.PageServer == criuPageServer {
		return r.startCRIUPageServer(img, prev)
	}
	return r.startGockptPageServer(img, prev)
}

// psReady bounds the wait for a page server to listen.
const psReady = 10 * time.Second

var listeningLine = regexp.MustCompile(`(?m)^page server listening on 127\.0\.0\.1:(\d+)$`)

// startGockptPageServer starts gockpt page-server on a port of its choice
// (--port 0) and reads the port from the line it prints once it listens.
func (r *Run) startGockptPageServer(img, prev string) (*pageServer, error) {
	args := []string{"page-server", "-D", img, "--address", "127.0.0.1", "--port", "0", "-o", pageServerLog, "-v4"}
	if prev != "" {
		args = append(args, "--prev-images-dir", prev)
	}
	ps := newPageServer(gockptPageServer, img)
	if err := r.spawn(ps, r.cfg.Gockpt, args, nil); err != nil {
		return nil, err
	}
	deadline := minTime(r.deadline, time.Now().Add(psReady))
	for {
		b, _ := os.ReadFile(ps.out)
		if m := listeningLine.FindSubmatch(b); m != nil {
			ps.port, _ = strconv.Atoi(string(m[1]))
			r.logf("gockpt page server %d listens on port %d", ps.pid, ps.port)
			return ps, nil
		}
		if ended, err := ps.poll(); err != nil {
			return nil, err
		} else if ended != "" {
			return nil, fmt.Errorf("gockpt page-server %s before it listened: %s\n%s", ended, lastLines(string(b), 5), ps.logTail())
		}
		if time.Now().After(deadline) {
			kerr := ps.kill()
			return nil, fmt.Errorf("gockpt page-server did not say it listens within %v (killed: %v): %s", psReady, kerr, lastLines(string(b), 5))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startCRIUPageServer starts CRIU's page server on a free port: CRIU does
// not pick one, so the runner takes a port the kernel has just handed out
// and tries another if someone took it meanwhile. CRIU says it listens by
// writing a zero byte to --status-fd, as CRIU's zdtm waits for it.
func (r *Run) startCRIUPageServer(img, prev string) (*pageServer, error) {
	if err := os.MkdirAll(img, 0o700); err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ps, err := r.tryCRIUPageServer(img, prev, port)
		if err == nil {
			return ps, nil
		}
		if !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
		r.logf("port %d taken meanwhile: %v", port, err)
		lastErr = err
		os.Rename(filepath.Join(img, pageServerLog), filepath.Join(img, fmt.Sprintf("%s.port-%d", pageServerLog, port)))
	}
	return nil, lastErr
}

func (r *Run) tryCRIUPageServer(img, prev string, port int) (*pageServer, error) {
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	args := []string{"page-server", "-D", img, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "-o", pageServerLog, "-v4", "--status-fd", "3"}
	if prev != "" {
		args = append(args, "--prev-images-dir", prev)
	}
	ps := newPageServer(criuPageServer, img)
	ps.port = port
	err = r.spawn(ps, r.cfg.CRIU, args, wr)
	wr.Close()
	if err != nil {
		return nil, err
	}
	rd.SetReadDeadline(minTime(r.deadline, time.Now().Add(psReady)))
	var b [1]byte
	n, err := rd.Read(b[:])
	if n == 1 && b[0] == 0 {
		r.logf("CRIU page server %d listens on port %d", ps.pid, ps.port)
		return ps, nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		kerr := ps.kill()
		return nil, fmt.Errorf("criu page-server did not say it listens within %v (killed: %v)\n%s", psReady, kerr, ps.logTail())
	}
	// It closed its status fd without a word: it ended, or will.
	ended := ""
	if ws, ok, werr := waitChild(ps.pid, time.Now().Add(5*time.Second)); werr != nil {
		ended = "closed its status fd and runs on (killed)"
		ps.kill()
	} else {
		ps.ended = true
		ended = "ended (" + statusText(ws, ok) + ")"
	}
	return nil, fmt.Errorf("criu page-server %s before it listened on port %d\n%s", ended, port, ps.logTail())
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// spawn starts a page server (or a lazy-pages daemon) as a child of the
// runner (which reaps it as it reaps everything else: see proc.go), with
// stdin on /dev/null and stdout and stderr in ps.out; extra, when set, is
// its fd 3.
func (r *Run) spawn(ps *pageServer, bin string, args []string, extra *os.File) error {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devnull.Close()
	of, err := os.OpenFile(ps.out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer of.Close()
	files := []uintptr{devnull.Fd(), of.Fd(), of.Fd()}
	if extra != nil {
		files = append(files, extra.Fd())
	}
	argv := append([]string{bin}, args...)
	r.logf("start: %s", strings.Join(argv, " "))
	pid, err := syscall.ForkExec(bin, argv, &syscall.ProcAttr{
		Dir:   r.dir,
		Env:   []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/"},
		Files: files,
	})
	if err != nil {
		return fmt.Errorf("starting %s: %w", ps.name, err)
	}
	delete(exits, pid) // an earlier process's status under a reused PID
	ps.pid, ps.start = pid, startTime(pid)
	return nil
}

// poll says how the page server ended ("" while it runs).
func (ps *pageServer) poll() (string, error) {
	reap()
	if ws, ok := exits[ps.pid]; ok {
		delete(exits, ps.pid)
		ps.ended = true
		return "ended (" + statusText(ws, true) + ")", nil
	}
	return "", nil
}

// wait waits for the page server to end after the dump (which ends its
// session; a lazy-pages daemon after its pages are all in place, or its
// tree ended); it fails when the server did not exit 0, or logged an
// error, or still runs at the deadline (it is killed then).
func (ps *pageServer) wait(deadline time.Time, limit time.Duration) error {
	ws, ok, err := waitChild(ps.pid, deadline)
	if err != nil {
		kerr := ps.kill()
		return fmt.Errorf("%s still running at the test's time limit (%v) after %s (killed: %v)\n%s", ps.name, limit, ps.after, kerr, ps.logTail())
	}
	ps.ended = true
	if !ok || !ws.Exited() || ws.ExitStatus() != 0 {
		return fmt.Errorf("%s ended after %s: %s\n%s", ps.name, ps.after, statusText(ws, ok), ps.logTail())
	}
	if errs := ps.logErrors(); errs != "" {
		return fmt.Errorf("%s exited 0 but logged errors: %s", ps.name, errs)
	}
	return nil
}

// kill kills the page server by PID if it still runs, and waits for it.
func (ps *pageServer) kill() error {
	if ps.ended {
		return nil
	}
	ps.ended = true
	if st := startTime(ps.pid); st != 0 && st == ps.start {
		_ = unix.Kill(ps.pid, unix.SIGKILL)
	}
	_, _, err := waitChild(ps.pid, time.Now().Add(10*time.Second))
	return err
}

// waitChild waits for the runner's own child pid to end and returns its
// status. Not waitExit: a page server is multi-threaded (gockpt is a Go
// program), and its leader shows as a zombie while its other threads
// still exit, when wait4 cannot collect it yet; waitExit would take it
// for a process that was not the runner's child.
func waitChild(pid int, deadline time.Time) (unix.WaitStatus, bool, error) {
	for {
		reap()
		if ws, ok := exits[pid]; ok {
			delete(exits, pid)
			return ws, true, nil
		}
		if !exists(pid) {
			// Collected by someone else: it cannot be, it is ours.
			return 0, false, nil
		}
		if time.Now().After(deadline) {
			return 0, false, fmt.Errorf("process %d still running after the timeout", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logErrors returns the error lines of the page server's log, "" if none.
func (ps *pageServer) logErrors() string {
	b, _ := os.ReadFile(ps.log)
	var errs []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "Error") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	if len(errs) == 0 {
		return ""
	}
	return fmt.Sprintf("%s:\n%s", ps.log, lastLines(strings.Join(errs, "\n"), 5))
}

// logTail is what the page server said: its output and the end of its log
// (CRIU's error lines, as for its other logs).
func (ps *pageServer) logTail() string {
	log := ps.log
	var b strings.Builder
	if out, _ := os.ReadFile(ps.out); len(bytes.TrimSpace(out)) > 0 {
		fmt.Fprintf(&b, "%s output: %s\n", ps.name, lastLines(string(out), 5))
	}
	if ps.tool == criuPageServer {
		b.WriteString(criuErrors(log))
		return b.String()
	}
	lb, err := os.ReadFile(log)
	if err != nil {
		fmt.Fprintf(&b, "(no %s log: %v)", ps.name, err)
	} else {
		fmt.Fprintf(&b, "%s:\n%s", log, lastLines(string(lb), 5))
	}
	return b.String()
}

func statusText(ws unix.WaitStatus, ok bool) string {
	if !ok {
		return "ended (status unknown: not the runner's child)"
	}
	return describe(ws)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

var (
	pagesImage   = regexp.MustCompile(`^pages-(\d+)\.img$`)
	pagemapImage = regexp.MustCompile(`^pagemap-(?:shmem-)?\d+\.img$`)
)

// checkServerPages checks that the pages in img came through the page
// server: no pages-N.img of the dump's own numbering, a pagemap for the
// root task, every pagemap naming a pages image of the server's numbering
// that holds exactly its present pages. It returns the present pages of
// the tasks' pagemaps and of all of them (pagemap-shmem-ID.img too).
func checkServerPages(img string, root int) (tasks, all uint64, err error) {
	ents, err := os.ReadDir(img)
	if err != nil {
		return 0, 0, err
	}
	var problems []string
	for _, e := range ents {
		if m := pagesImage.FindStringSubmatch(e.Name()); m != nil {
			if id, _ := strconv.ParseUint(m[1], 10, 32); id < firstServerPagesID {
				problems = append(problems, fmt.Sprintf("%s: written by the dump, not received by the page server (whose pages images start at pages-%d.img)", e.Name(), firstServerPagesID))
			}
		}
	}
	rootMap := fmt.Sprintf("pagemap-%d.img", root)
	if !slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == rootMap }) {
		problems = append(problems, fmt.Sprintf("no %s: the root's pages were not received", rootMap))
	}
	for _, e := range ents {
		if !pagemapImage.MatchString(e.Name()) {
			continue
		}
		n, err := checkReceivedPagemap(img, e.Name())
		if err != nil {
			problems = append(problems, err.Error())
		}
		all += n
		if !strings.HasPrefix(e.Name(), "pagemap-shmem-") {
			tasks += n
		}
	}
	if len(problems) > 0 {
		return 0, 0, fmt.Errorf("images in %s after the page server:\n%s%s", filepath.Base(img), strings.Join(problems, "\n"), removedByDump(img))
	}
	return tasks, all, nil
}

// removedByDump returns the lines of the dump's log (gockpt's) that say it
// removed image files it did not write, with a newline before them: what
// became of pages the server had moved in.
func removedByDump(img string) string {
	var out []string
	for _, log := range []string{"dump.log", "pre-dump.log"} {
		b, _ := os.ReadFile(filepath.Join(img, log))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "image files of an earlier dump") {
				out = append(out, log+": "+strings.TrimSpace(l))
			}
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "\n" + strings.Join(out, "\n")
}

// checkReceivedPagemap checks one pagemap the page server wrote against
// the pages image it names.
func checkReceivedPagemap(img, name string) (present uint64, err error) {
	f, err := os.Open(filepath.Join(img, name))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	id, entries, err := pagemap.Parse(f, name)
	if err != nil {
		return 0, err
	}
	if id < firstServerPagesID {
		return 0, fmt.Errorf("%s names pages-%d.img: not the page server's", name, id)
	}
	for _, e := range entries {
		if e.Flags&pagemap.FlagPresent != 0 {
			present += e.NrPages
		}
	}
	pages := fmt.Sprintf("pages-%d.img", id)
	st, err := os.Stat(filepath.Join(img, pages))
	if err != nil {
		return 0, fmt.Errorf("%s names %s: %w", name, pages, err)
	}
	if uint64(st.Size()) != present*pagemap.PageSize {
		return 0, fmt.Errorf("%s lists %d present pages, %s holds %d bytes", name, present, pages, st.Size())
	}
	return present, nil
}
