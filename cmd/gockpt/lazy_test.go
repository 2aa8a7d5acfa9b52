package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// buildC compiles a test program of testdata with gcc.
func buildC(t *testing.T, name string) string {
	t.Helper()
	gcc := program(t, "gcc")
	out := filepath.Join(t.TempDir(), name)
	if b, err := exec.Command(gcc, "-O2", "-pthread", "-o", out, filepath.Join("testdata", name+".c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v: %s", name, err, b)
	}
	return out
}

// lazyDaemon is `gockpt lazy-pages` running as a child process.
type lazyDaemon struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startLazyDaemon runs `gockpt lazy-pages` (this test binary as gockpt) and
// waits until it listens on sock.
func startLazyDaemon(t *testing.T, imgs, sock string, args ...string) *lazyDaemon {
	t.Helper()
	args = append([]string{"lazy-pages", "-D", imgs, "--address", sock, "-v4"}, args...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GOCKPT_TEST_AS_GOCKPT=1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ld := &lazyDaemon{cmd: cmd, out: &bytes.Buffer{}, done: make(chan error, 1)}
	go func() { ld.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case err := <-ld.done:
			ld.done <- err
		case <-time.After(10 * time.Second):
		}
	})
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			ld.out.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "lazy-pages daemon listening on ") {
				up <- true
			}
		}
		close(up)
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("lazy-pages exited: %s", ld.out)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("lazy-pages does not listen: %s", ld.out)
	}
	return ld
}

// wait waits for the daemon to exit and returns its output.
func (ld *lazyDaemon) wait(t *testing.T, within time.Duration) string {
	t.Helper()
	select {
	case err := <-ld.done:
		ld.done <- err
		time.Sleep(20 * time.Millisecond)
		if err != nil {
			t.Fatalf("lazy-pages: %v: %s", err, ld.out)
		}
	case <-time.After(within):
		t.Fatalf("lazy-pages still runs after %v: %s", within, ld.out)
	}
	return ld.out.String()
}

var lazySummary = regexp.MustCompile(`Lazy pages: all in place .* after restore connected: (\d+) pages \(.*\) of (\d+) tasks; (\d+) faults answered \(median .*, p99 .*\), (\d+) pages pushed ahead of faults, (\d+) dropped by the tasks first`)

func readResult(t *testing.T, dir, name string) string {
	t.Helper()
	testproc.WaitFile(t, filepath.Join(dir, name), 30*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return string(b)
}

// TestLazyRestore: a tree of two processes, one with two threads, restored
// with --lazy-pages. After restore the tree forks, moves an area with
// mremap, drops one with MADV_DONTNEED, unmaps and maps another again, and
// checks every byte; the daemon follows each. Once with pages coming only
// as they fault (--push-pages 0: every event meets pages not in place),
// once as by default (faults and background copies).
func TestLazyRestore(t *testing.T) {
	prog := buildC(t, "lazyprog")
	for _, mode := range []struct {
		name string
		args []string
	}{{"faults-only", []string{"--push-pages", "0"}}, {"default", nil}} {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			p := testproc.Start(t, prog, dir)
			t.Cleanup(func() { testproc.KillTree(p.Pid) })
			testproc.WaitFile(t, filepath.Join(dir, "ready"), 20*time.Second)
			testproc.WaitFile(t, filepath.Join(dir, "child-ready"), 20*time.Second)
			tids, _ := treeTasks(p.Pid)
			var all []int
			for pid, ts := range tids {
				all = append(all, ts...)
				if pid != p.Pid && len(tids) != 2 {
					t.Fatalf("tree %v, want the program and its child", tids)
				}
			}
			imgs := filepath.Join(t.TempDir(), "img")
			gockpt(t, "dump", "-t", strconv.Itoa(p.Pid), "-D", imgs)
			p.Cmd.Wait()
			waitPidsFree(t, all)

			sock := filepath.Join(t.TempDir(), "lazy.sock")
			ld := startLazyDaemon(t, imgs, sock, mode.args...)
			gockpt(t, "restore", "-D", imgs, "--lazy-pages", "--address", sock, "-d")
			t.Cleanup(func() { killRestored(p.Pid) })
			for pid := range tids {
				if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
					t.Fatalf("process %d after restore: %v", pid, err)
				}
			}
			for _, name := range []string{"thread", "new-child", "first-child", "main"} {
				if got := readResult(t, dir, name); got != "ok" {
					t.Errorf("%s: %s", name, got)
				}
			}
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(p.Pid, &ws, 0, nil); err != nil || ws.ExitStatus() != 0 {
				t.Fatalf("the restored program: %v, status %v", err, ws)
			}
			out := ld.wait(t, 30*time.Second)
			m := lazySummary.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("lazy-pages said: %s", out)
			}
			pages, _ := strconv.Atoi(m[1])
			tasks, _ := strconv.Atoi(m[2])
			faults, _ := strconv.Atoi(m[3])
			pushed, _ := strconv.Atoi(m[4])
			dropped, _ := strconv.Atoi(m[5])
			if tasks != 2 || pages == 0 {
				t.Fatalf("lazy-pages: %d tasks, %d pages: %s", tasks, pages, out)
			}
			if mode.args == nil && pushed == 0 {
				t.Fatalf("by default, pages are pushed ahead of faults: %s", out)
			}
			if mode.args != nil {
				if faults == 0 {
					t.Fatalf("faults only, but no fault answered: %s", out)
				}
				// Nothing was copied ahead, so region C (dropped) and D
				// (unmapped), 256 pages each, never came.
				if pushed > 16 || dropped < 512 {
					t.Fatalf("faults only: %d pages pushed, %d dropped; want none pushed (but the probes of a new child), 512 dropped at least: %s", pushed, dropped, out)
				}
			}
			t.Logf("%s", strings.TrimSpace(m[0]))
		})
	}
}

// TestLazyRestoreNoDaemon: restore --lazy-pages without a daemon is
// refused before anything is made.
func TestLazyRestoreNoDaemon(t *testing.T) {
	p, _ := startPattern(t)
	imgs := filepath.Join(t.TempDir(), "img")
	gockpt(t, "dump", "-t", strconv.Itoa(p.Pid), "-D", imgs)
	p.Cmd.Wait()
	waitPidsFree(t, []int{p.Pid})
	var out, errOut bytes.Buffer
	sock := filepath.Join(t.TempDir(), "none.sock")
	code := run([]string{"restore", "-D", imgs, "--lazy-pages", "--address", sock, "-d"}, &out, &errOut)
	want := fmt.Sprintf("no lazy-pages daemon at %s (no such file or directory): start `gockpt lazy-pages -D DIR` first, with the same --address (or work directory)", sock)
	if code != 1 || !strings.Contains(errOut.String(), want) {
		t.Fatalf("exit %d: %s\nwant %q", code, errOut.String(), want)
	}
	if testproc.Alive(p.Pid) {
		t.Fatal("the refused restore left the process")
	}
}

// TestLazyMakeLazy: post-copy from a small directory. image make-lazy
// leaves the lazy pages out of DST; restore refuses DST without
// --lazy-pages (the memory would come back zero), and restores it with
// --lazy-pages while lazy-pages serves the pages from the full SRC.
func TestLazyMakeLazy(t *testing.T) {
	p, pdir := startPattern(t)
	pid := strconv.Itoa(p.Pid)
	root := t.TempDir()
	src, dst := filepath.Join(root, "src"), filepath.Join(root, "dst")
	gockpt(t, "dump", "-t", pid, "-D", src)
	p.Cmd.Wait()
	waitPidsFree(t, []int{p.Pid})
	gockpt(t, "image", "make-lazy", src, dst)

	var out, errOut bytes.Buffer
	code := run([]string{"restore", "-D", dst, "-d"}, &out, &errOut)
	want := regexp.MustCompile(`^Error: task ` + pid + `: pages 0x[0-9a-f]+-0x[0-9a-f]+ are lazy and their data is not in ` + regexp.QuoteMeta(dst) + ` \(made by dump --lazy-pages or image make-lazy\): restore with --lazy-pages, with gockpt lazy-pages serving the full images or the page server\n`)
	if code != 1 || !want.MatchString(errOut.String()) {
		t.Fatalf("restore of DST without --lazy-pages: exit %d: %s", code, errOut.String())
	}
	if testproc.Alive(p.Pid) {
		t.Fatal("the refused restore left the process")
	}

	sock := filepath.Join(t.TempDir(), "lazy.sock")
	ld := startLazyDaemon(t, src, sock)
	gockpt(t, "restore", "-D", dst, "--lazy-pages", "--address", sock, "-d")
	t.Cleanup(func() { killRestored(p.Pid) })
	summary := ld.wait(t, 60*time.Second)
	if m := lazySummary.FindStringSubmatch(summary); m == nil || m[1] == "0" {
		t.Fatalf("lazy-pages said: %s", summary)
	}
	verifyPattern(t, p.Pid, pdir)
}

// lazyKillRound restores the pattern process lazily with pages from
// source ("" for the images, else a page server's host:port), kills the
// lazy-pages daemon after wait, and checks that the process runs with
// every page right (the daemon had finished, or its standby finished from
// the images) or is gone (pages from a page server: the standby killed
// it), never running with pages missing nor waiting for ever. It returns
// whether the kill landed before the daemon finished.
func lazyKillRound(t *testing.T, p *testproc.Proc, pdir, imgs string, wait time.Duration, remote string) bool {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lazy.sock")
	var args []string
	if remote != "" {
		host, port, _ := strings.Cut(remote, ":")
		args = []string{"--page-server", "--address", host, "--port", port}
		sock = filepath.Join(imgs, lazySocketName)
	}
	ld := startLazyDaemon(t, imgs, sock, args...)
	if remote != "" {
		gockpt(t, "restore", "-D", imgs, "--lazy-pages", "-d")
	} else {
		gockpt(t, "restore", "-D", imgs, "--lazy-pages", "--address", sock, "-d")
	}
	time.Sleep(wait)
	ld.cmd.Process.Kill()
	var err error
	select {
	case err = <-ld.done:
		ld.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("the killed daemon does not exit")
	}
	finished := strings.Contains(ld.out.String(), "Lazy pages: all in place")
	if !finished && remote == "" {
		// The standby finishes the daemon's work from the images.
		pollUntil(t, 20*time.Second, func() (bool, string) {
			return strings.Contains(ld.out.String(), "lazy-pages standby: the lazy-pages daemon died with "), "the standby does not take over: " + ld.out.String()
		})
		if !regexp.MustCompile(`lazy-pages standby: the lazy-pages daemon died with (\d+ pages not in place: the standby put them in place|0 pages not in place: nothing was left to do)`).MatchString(ld.out.String()) {
			t.Fatalf("the standby did not finish: %s", ld.out)
		}
		verifyPattern(t, p.Pid, pdir)
		killRestored(p.Pid)
		return true
	}
	// The standby acts at once; the tree is gone within moments.
	deadline := time.Now().Add(10 * time.Second)
	for testproc.Alive(p.Pid) && !finished && time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		syscall.Wait4(p.Pid, &ws, syscall.WNOHANG, nil)
		time.Sleep(5 * time.Millisecond)
	}
	if finished {
		verifyPattern(t, p.Pid, pdir)
		killRestored(p.Pid)
		return false
	}
	if testproc.Alive(p.Pid) {
		t.Fatalf("the daemon was killed with pages not in place, and the restored process %d still runs: %s", p.Pid, ld.out)
	}
	var ws syscall.WaitStatus
	syscall.Wait4(p.Pid, &ws, 0, nil) // restore -d made it this process's child
	pollUntil(t, 10*time.Second, func() (bool, string) {
		return regexp.MustCompile(`lazy-pages standby: the lazy-pages daemon died with \d+ pages of the restored tree not in place \(its pages were to come from a page server\): killed the tree \(PIDs \[` + strconv.Itoa(p.Pid) + `\]\) rather than let it run on with memory missing`).MatchString(ld.out.String()), "the standby does not say it killed the tree: " + ld.out.String()
	})
	return true
}

// TestLazyKillDaemon: ten SIGKILLs of the lazy-pages daemon at random
// moments while it puts pages in place, from the images (its standby
// finishes) and from a page server (its standby kills the tree): the
// restored process never runs on with memory missing, nor waits for ever.
func TestLazyKillDaemon(t *testing.T) {
	for _, remote := range []bool{false, true} {
		t.Run(fmt.Sprintf("page-server=%v", remote), func(t *testing.T) {
			p, pdir := startPattern(t)
			pid := strconv.Itoa(p.Pid)
			imgs := filepath.Join(t.TempDir(), "img")
			gockpt(t, "dump", "-t", pid, "-D", imgs)
			p.Cmd.Wait()
			waitPidsFree(t, []int{p.Pid})
			landed := 0
			for i := 0; i < 10; i++ {
				waitPidsFree(t, []int{p.Pid})
				src := ""
				if remote {
					ps := startLazyPageServer(t, imgs)
					src = "127.0.0.1:" + strconv.Itoa(ps.port)
				}
				wait := time.Duration(rand.Int63n(int64(60 * time.Millisecond)))
				if lazyKillRound(t, p, pdir, imgs, wait, src) {
					landed++
				}
			}
			t.Logf("%d of 10 kills landed before every page was in place", landed)
			if landed == 0 {
				t.Fatal("no kill landed while pages were missing: the test proves nothing")
			}
		})
	}
}

// startLazyPageServer runs `gockpt page-server --lazy-pages` on imgs.
func startLazyPageServer(t *testing.T, imgs string) *pageServer {
	t.Helper()
	return startGockptPageServer(t, imgs, "--lazy-pages")
}

// gockptCmd runs this test binary as gockpt in a child process.
func gockptCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GOCKPT_TEST_AS_GOCKPT=1")
	return cmd
}

// nsChildren are the processes whose parent is pid, with the PID each has
// in its own namespace.
func nsChildren(pid int) map[int]int {
	out := map[int]int{}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		c, _ := strconv.Atoi(f)
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", c))
		if strings.Contains(string(st), "State:\tZ") {
			continue // dead: the namespace's init (sleep) never reaps
		}
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
				ids := strings.Fields(v)
				n, _ := strconv.Atoi(ids[len(ids)-1])
				out[c] = n
			}
		}
	}
	return out
}

// destination is a "destination host": lazy-pages --page-server and
// restore --lazy-pages run in a new PID and mount namespace (the frozen
// source holds the PIDs) whose init stays; their output and the restore's
// status land in work.
type destination struct {
	ns   *exec.Cmd
	done chan error
}

func startDestination(t *testing.T, unshare, bin, imgs string, port int, work string) *destination {
	t.Helper()
	script := fmt.Sprintf(`export GOCKPT_TEST_AS_GOCKPT=1
%[1]s lazy-pages -D %[2]s --page-server --address 127.0.0.1 --port %[3]d > %[4]s/lp.out 2>&1 &
while ! grep -q listening %[4]s/lp.out 2>/dev/null; do sleep 0.01; done
%[1]s restore -D %[2]s --lazy-pages -d > %[4]s/restore.out 2>&1
echo $? > %[4]s/restore.tmp && mv %[4]s/restore.tmp %[4]s/restore.rc
exec sleep 600`, bin, imgs, port, work)
	d := &destination{ns: exec.Command(unshare, "-pf", "--mount-proc", "sh", "-c", script), done: make(chan error, 1)}
	if err := d.ns.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.ns.Wait() }()
	return d
}

// process is the restored process of PID pid in the namespace, seen from
// here; 0 if it does not run.
func (d *destination) process(pid int) int {
	for init := range nsChildren(d.ns.Process.Pid) {
		for c, inner := range nsChildren(init) {
			if inner == pid {
				return c
			}
		}
	}
	return 0
}

// stop kills the namespace's init first (which kills the namespace), then
// unshare.
func (d *destination) stop() {
	if d.ns == nil {
		return
	}
	for c := range nsChildren(d.ns.Process.Pid) {
		syscall.Kill(c, syscall.SIGKILL)
	}
	d.ns.Process.Kill()
	<-d.done
	d.ns = nil
}

// TestLazyKillSource: ten SIGKILLs of dump --lazy-pages at random moments
// while it serves its frozen tree's pages to a lazy-pages daemon on a
// "destination" (a new PID and mount namespace: the source still holds the
// PIDs). Afterwards exactly one copy runs, with every page right: the
// source, let go as it was, when the kill came before the destination had
// every page (its daemon killed what it restored); else the destination.
func TestLazyKillSource(t *testing.T) {
	unshare := program(t, "unshare")
	bin, _ := filepath.Abs(os.Args[0])
	outcomes := map[string]int{}
	for i := 0; i < 10; i++ {
		p, pdir := startPattern(t)
		pid := strconv.Itoa(p.Pid)
		work := t.TempDir()
		imgs := filepath.Join(work, "img")
		port := freePort(t, "127.0.0.1")
		dump := gockptCmd("dump", "-t", pid, "-D", imgs, "--lazy-pages", "--address", "127.0.0.1", "--port", strconv.Itoa(port))
		var dout bytes.Buffer
		dump.Stdout, dump.Stderr = &dout, &dout
		if err := dump.Start(); err != nil {
			t.Fatal(err)
		}
		dumpDone := make(chan error, 1)
		go func() { dumpDone <- dump.Wait() }()
		pollUntil(t, 20*time.Second, func() (bool, string) {
			return strings.Contains(dout.String(), "Images written"), "the dump does not serve: " + dout.String()
		})
		d := startDestination(t, unshare, bin, imgs, port, work)
		t.Cleanup(d.stop)
		testproc.WaitFile(t, filepath.Join(work, "restore.rc"), 20*time.Second)
		time.Sleep(time.Duration(rand.Int63n(int64(150 * time.Millisecond))))
		dump.Process.Kill()
		<-dumpDone
		// The source is dead (the dump killed it once the destination had
		// every page: reap it) or runs on.
		time.Sleep(100 * time.Millisecond)
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid)); strings.Contains(string(b), ") Z ") {
			p.Cmd.Wait()
		}
		rc, _ := os.ReadFile(filepath.Join(work, "restore.rc"))
		// Wait for the destination to settle: its daemon ends either way.
		pollUntil(t, 20*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(filepath.Join(work, "lp.out"))
			return strings.Contains(string(b), "Lazy pages: all in place") || strings.Contains(string(b), "Error:"), "the destination's daemon does not end: " + string(b)
		})
		lp, _ := os.ReadFile(filepath.Join(work, "lp.out"))
		dest := d.process(p.Pid)
		sourceRuns := testproc.Alive(p.Pid)
		switch {
		case sourceRuns && dest == 0:
			outcomes["source let go, destination killed"]++
			verifyPattern(t, p.Pid, pdir)
			if !strings.Contains(string(lp), "the restored tree was killed") {
				t.Errorf("round %d: the destination's daemon does not say it killed the tree: %s", i, lp)
			}
		case !sourceRuns && dest != 0:
			outcomes["destination runs, source killed"]++
			verifyPattern(t, dest, pdir)
		default:
			t.Fatalf("round %d: the source runs: %v, the destination runs: %v (restore %s): dump said %s; daemon said %s", i, sourceRuns, dest != 0, rc, dout.String(), lp)
		}
		if testproc.Alive(p.Pid) {
			testproc.KillTree(p.Pid)
			p.Cmd.Wait()
		}
		d.stop()
		waitPidsFree(t, []int{p.Pid})
	}
	t.Logf("outcomes: %v", outcomes)
}

// TestLazyMigration: live migration as the seed runs it, between a
// "source" and a "destination" on this machine (the destination restores
// in a new PID and mount namespace: the frozen source still holds the
// PIDs): pre-dump, copy, final dump --lazy-pages --port, copy, lazy-pages
// --page-server, restore --lazy-pages. Pages the pre-dump saved and the
// tree did not write since come from the parent images; only the others
// travel lazily. Every page is checked.
func TestLazyMigration(t *testing.T) {
	unshare := program(t, "unshare")
	bin, _ := filepath.Abs(os.Args[0])
	p, pdir := startPattern(t)
	pid := strconv.Itoa(p.Pid)
	src, dst := t.TempDir(), t.TempDir()
	gockpt(t, "pre-dump", "-t", pid, "-D", filepath.Join(src, "pre1"), "--track-mem")
	copyImages(t, filepath.Join(src, "pre1"), filepath.Join(dst, "pre1"))
	time.Sleep(200 * time.Millisecond) // the tree writes on

	port := freePort(t, "127.0.0.1")
	dump := gockptCmd("dump", "-t", pid, "-D", filepath.Join(src, "final"), "--track-mem", "--prev-images-dir", "../pre1",
		"--lazy-pages", "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--display-stats")
	var dout bytes.Buffer
	dump.Stdout, dump.Stderr = &dout, &dout
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	dumpDone := make(chan error, 1)
	go func() { dumpDone <- dump.Wait() }()
	t.Cleanup(func() { dump.Process.Kill() })
	pollUntil(t, 20*time.Second, func() (bool, string) {
		return strings.Contains(dout.String(), "Images written"), "the dump does not serve: " + dout.String()
	})
	final := filepath.Join(dst, "final")
	copyImages(t, filepath.Join(src, "final"), final)
	if err := os.Symlink("../pre1", filepath.Join(final, "parent")); err != nil {
		t.Fatal(err)
	}
	d := startDestination(t, unshare, bin, final, port, dst)
	t.Cleanup(d.stop)
	testproc.WaitFile(t, filepath.Join(dst, "restore.rc"), 30*time.Second)
	if rc, _ := os.ReadFile(filepath.Join(dst, "restore.rc")); strings.TrimSpace(string(rc)) != "0" {
		out, _ := os.ReadFile(filepath.Join(dst, "restore.out"))
		t.Fatalf("restore on the destination: %s", out)
	}
	select {
	case err := <-dumpDone:
		if err != nil {
			t.Fatalf("dump --lazy-pages: %v: %s", err, dout.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("dump --lazy-pages still serves: %s", dout.String())
	}
	p.Cmd.Wait() // the source, killed once the destination had every page
	var lp []byte
	pollUntil(t, 30*time.Second, func() (bool, string) {
		lp, _ = os.ReadFile(filepath.Join(dst, "lp.out"))
		return strings.Contains(string(lp), "Lazy pages: all in place"), "the destination's daemon does not finish: " + string(lp)
	})
	m := lazySummary.FindStringSubmatch(string(lp))
	if m == nil || m[1] == "0" {
		t.Fatalf("the destination's daemon said: %s", lp)
	}
	skipped := regexp.MustCompile(`Memory pages skipped from parent: (\d+)`).FindStringSubmatch(dout.String())
	if skipped == nil || skipped[1] == "0" {
		t.Fatalf("the final dump left nothing in the pre-dump's images: %s", dout.String())
	}
	dest := d.process(p.Pid)
	if dest == 0 {
		t.Fatalf("no restored process with PID %d in the destination's namespace", p.Pid)
	}
	if testproc.Alive(p.Pid) {
		t.Fatal("the source runs on beside the destination")
	}
	verifyPattern(t, dest, pdir)
	t.Logf("pages left in the pre-dump's images: %s; lazy: %s", skipped[1], strings.TrimSpace(m[0]))
}
