package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
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
