package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A summary line as gockpt lazy-pages prints it (cmd/gockpt/lazypages.go).
const summaryLine = "Lazy pages: all in place 31ms after restore connected: 43 pages (0.2 MiB) of 2 tasks; 23 faults answered (median 43µs, p99 1.266ms), 3 pages pushed ahead of faults, 1 dropped by the tasks first"

func TestParseLazySummary(t *testing.T) {
	out := "lazy-pages daemon listening on /x/lazy-pages.socket\n" + summaryLine + "\n"
	s, err := parseLazySummary(out)
	if err != nil {
		t.Fatal(err)
	}
	want := lazySummary{Line: summaryLine, Took: 31 * time.Millisecond, Pages: 43, Tasks: 2, Faults: 23,
		Median: 43 * time.Microsecond, P99: 1266 * time.Microsecond, Pushed: 3, Dropped: 1}
	if *s != want {
		t.Errorf("parsed %+v, want %+v", *s, want)
	}
	// Nothing served: zero durations print as 0s.
	zero := "Lazy pages: all in place 0s after restore connected: 0 pages (0.0 MiB) of 0 tasks; 0 faults answered (median 0s, p99 0s), 0 pages pushed ahead of faults, 0 dropped by the tasks first"
	if s, err := parseLazySummary(zero); err != nil || s.Tasks != 0 || s.Took != 0 {
		t.Errorf("zero summary: %+v, %v", s, err)
	}
	for _, bad := range []string{
		"lazy-pages daemon listening on /x\n",
		strings.Replace(summaryLine, "31ms", "31 ms", 1),
		strings.Replace(summaryLine, "3 pages pushed", "44 pages pushed", 1),
		strings.Replace(summaryLine, "median 43µs", "median 43", 1),
	} {
		if s, err := parseLazySummary(bad); err == nil {
			t.Errorf("%q parsed: %+v", bad, s)
		}
	}
}

func TestLazyDaemonArgs(t *testing.T) {
	for _, c := range []struct {
		mode string
		want string
	}{
		{"lazy", "lazy-pages -D /r/img-1 -o lazy-pages.log -v4"},
		{"lazy-faults", "lazy-pages -D /r/img-1 -o lazy-pages.log -v4 --push-pages 0"},
		{"predump-lazy", "lazy-pages -D /r/img-1 -o lazy-pages.log -v4"},
		{"make-lazy", "lazy-pages -D /r/img-1 -o lazy-pages.log -v4 --address /r/lazy-pages.socket"},
	} {
		m := findMode(c.mode)
		if m == nil || m.Lazy == nil {
			t.Fatalf("no lazy mode %s", c.mode)
		}
		if got := strings.Join(lazyDaemonArgs(m.Lazy, "/r/img-1", "/r/lazy-pages.socket"), " "); got != c.want {
			t.Errorf("%s: %s, want %s", c.mode, got, c.want)
		}
	}
}

// fakeLazyDaemon writes a script that stands for gockpt lazy-pages: it
// says it listens on listen (its images directory's socket when ""),
// then runs body.
func fakeLazyDaemon(t *testing.T, mode, listen, body string) (*Run, string) {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "img-1")
	if err := os.Mkdir(img, 0o700); err != nil {
		t.Fatal(err)
	}
	if listen == "" {
		listen = filepath.Join(img, lazySocketName)
	}
	bin := filepath.Join(dir, "gockpt")
	script := "#!/bin/sh\necho 'lazy-pages daemon listening on " + listen + "'\n" + body + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Run{cfg: &Config{Gockpt: bin, Timeout: time.Second}, mode: findMode(mode), dir: dir, deadline: time.Now().Add(5 * time.Second)}, img
}

func startFake(t *testing.T, r *Run, img string) {
	t.Helper()
	sock := filepath.Join(img, lazySocketName)
	d, err := r.startLazyDaemon(img, sock, lazyDaemonArgs(r.mode.Lazy, img, sock))
	if err != nil {
		t.Fatal(err)
	}
	r.lazyd, r.lazySock = d, sock
}

func TestLazyDaemonEnds(t *testing.T) {
	r, img := fakeLazyDaemon(t, "lazy", "", "echo '"+summaryLine+"'")
	startFake(t, r, img)
	if err := r.endLazy(); err != nil {
		t.Error(err)
	}
	if !r.lazyd.ended || len(r.notes) != 0 {
		t.Errorf("ended %v, notes %v", r.lazyd.ended, r.notes)
	}

	// No task served: a failure, but in predump-lazy a note.
	zero := strings.Replace(summaryLine, "of 2 tasks", "of 0 tasks", 1)
	r, img = fakeLazyDaemon(t, "lazy", "", "echo '"+zero+"'")
	startFake(t, r, img)
	if err := r.endLazy(); err == nil || !strings.Contains(err.Error(), "served no task") {
		t.Errorf("no task in lazy: %v", err)
	}
	r, img = fakeLazyDaemon(t, "predump-lazy", "", "echo '"+zero+"'")
	startFake(t, r, img)
	if err := r.endLazy(); err != nil || len(r.notes) != 1 {
		t.Errorf("no task in predump-lazy: %v, notes %v", err, r.notes)
	}

	// Exit 0 without the summary, with an error in its log, failing, its
	// socket left behind.
	for _, c := range []struct{ body, want string }{
		{"exit 0", "no summary line"},
		{"echo '(0.1) Error: lazy pages: task 7: boom' > img-1/lazy-pages.log; echo '" + summaryLine + "'", "exited 0 but logged errors: "},
		{"echo '(0.1) Error: restore hung up' > img-1/lazy-pages.log; exit 1", "gockpt lazy-pages ended after the restore (pushing every lazy page in place): exit 1"},
		{"touch img-1/lazy-pages.socket; echo '" + summaryLine + "'", "left its socket"},
		{"echo '(1.2) Warn: lazy pages: task 7: 0x1000-0x2000 cannot be put in place (ENOENT) and no event says why: given up' > img-1/lazy-pages.log; echo '" + summaryLine + "'", "gave lazy pages up"},
	} {
		r, img = fakeLazyDaemon(t, "lazy", "", c.body)
		startFake(t, r, img)
		if err := r.endLazy(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.body, err, c.want)
		}
	}
}

func TestLazyDaemonKilled(t *testing.T) {
	r, img := fakeLazyDaemon(t, "lazy-faults", "", "exec sleep 100")
	startFake(t, r, img)
	pid := r.lazyd.pid
	r.deadline = time.Now().Add(100 * time.Millisecond)
	if err := r.endLazy(); err == nil || !strings.Contains(err.Error(), "gockpt lazy-pages still running at the test's time limit (1s) after the restored tree ended") {
		t.Errorf("daemon that hangs: %v", err)
	}
	if exists(pid) {
		t.Errorf("daemon %d left running", pid)
	}

	// On another socket than the one restore will use.
	r, img = fakeLazyDaemon(t, "lazy", "/elsewhere.socket", "exec sleep 100")
	sock := filepath.Join(img, lazySocketName)
	if _, err := r.startLazyDaemon(img, sock, lazyDaemonArgs(r.mode.Lazy, img, sock)); err == nil || !strings.Contains(err.Error(), "listens on /elsewhere.socket, want "+sock) {
		t.Errorf("daemon on another socket: %v", err)
	}
	reap()

	// One that never says it listens.
	r, img = fakeLazyDaemon(t, "lazy", "", "")
	os.WriteFile(r.cfg.Gockpt, []byte("#!/bin/sh\necho 'lazy-pages: listening on x: address already in use' >&2\nexit 1\n"), 0o755)
	sock = filepath.Join(img, lazySocketName)
	if _, err := r.startLazyDaemon(img, sock, nil); err == nil || !strings.Contains(err.Error(), "gockpt lazy-pages ended (exit 1) before it listened: lazy-pages: listening on x") {
		t.Errorf("daemon that did not listen: %v", err)
	}
}
