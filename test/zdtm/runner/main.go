// Command runner builds and runs the zdtm tests of gockpt: each test is
// started, checkpointed and restored in one or more modes, sent SIGTERM, and
// judged by its own output plus the runner's comparison of the tree before
// and after (PIDs and threads, smaps with VmFlags, per-thread status and
// scheduling, oom_score_adj, fds with fdinfo; allowed.go lists what restore
// may change).
//
// Tests run one at a time: restored processes take their old PIDs back, and
// two tests at once could collide. The runner is a child subreaper so that
// it can reap everything a test leaves behind (see proc.go).
//
// Usage (from the repository root):
//
//	go run ./test/zdtm/runner [-t name[,name]] [-m mode[,mode]] [-keep] [-v]
//	go run ./test/zdtm/runner -m none      # no checkpoint: the tests' own checks
//	go run ./test/zdtm/runner -list
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		names   = flag.String("t", "", "run only these tests (comma-separated names)")
		modeArg = flag.String("m", strings.Join(defaultRunModes(), ","), "modes to run (comma-separated: none, dump, restore, snapshot, twice, predump, page-server, predump-page-server, lazy, lazy-faults, predump-lazy, predump-hashes, make-lazy, criu-restore, criu-dump, criu-predump, criu-page-server, criu-dump-page-server; \"all\" = the default set; a test runs only the modes its header allows)")
		noCR    = flag.Bool("no-cr", false, "same as -m none: no checkpoint, only the tests' own checks")
		keep    = flag.Bool("keep", false, "keep the work directory (images, logs, output) of failed runs")
		verbose = flag.Bool("v", false, "verbose: commands, timings, gockpt output")
		gockpt  = flag.String("gockpt", "bin/gockpt", "gockpt binary")
		zdtmDir = flag.String("dir", "test/zdtm", "zdtm directory (tests, lib)")
		build   = flag.String("build", "test/zdtm/build", "build directory for test binaries")
		timeout = flag.Duration("timeout", 60*time.Second, "time limit for one test in one mode")
		list    = flag.Bool("list", false, "list the tests and their modes, and exit")
	)
	flag.Parse()
	runtime.LockOSThread() // keep the subreaper flag and waits on one thread for clarity

	tests, err := Discover(*zdtmDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zdtm:", err)
		return 2
	}
	if *list {
		for _, t := range tests {
			extra := ""
			if len(t.Needs) > 0 {
				extra = " needs: " + strings.Join(t.Needs, " ")
			}
			fmt.Printf("%-18s [%s]%s\n    %s\n", t.Name, strings.Join(t.RunModes(), " "), extra, t.Desc)
		}
		return 0
	}
	tests, err = selectTests(tests, *names)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zdtm:", err)
		return 2
	}
	if *noCR {
		*modeArg = "none"
	}
	var runModes []*Mode
	for _, m := range strings.Split(*modeArg, ",") {
		if m == "all" {
			for _, dm := range defaultRunModes() {
				runModes = append(runModes, findMode(dm))
			}
			continue
		}
		mode := findMode(strings.TrimSpace(m))
		if mode == nil {
			fmt.Fprintf(os.Stderr, "zdtm: unknown mode %q\n", m)
			return 2
		}
		runModes = append(runModes, mode)
	}
	gockptPath, err := filepath.Abs(*gockpt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zdtm:", err)
		return 2
	}
	needGockpt := false
	for _, m := range runModes {
		needGockpt = needGockpt || m.Name != "none"
	}
	if _, err := os.Stat(gockptPath); err != nil && needGockpt {
		fmt.Fprintf(os.Stderr, "zdtm: %v (make gockpt)\n", err)
		return 2
	}
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "zdtm: PR_SET_CHILD_SUBREAPER:", err)
		return 2
	}
	if err := os.MkdirAll(*build, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "zdtm:", err)
		return 2
	}
	top, err := os.MkdirTemp("", "zdtm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "zdtm:", err)
		return 2
	}
	// Tests running as an unprivileged user must reach their directories.
	_ = os.Chmod(top, 0o755)

	cfg := &Config{Gockpt: gockptPath, Timeout: *timeout, Verbose: *verbose}
	for _, m := range runModes {
		if m.Missing != nil {
			cfg.CRIU, cfg.CRIUMissing = findCRIU(*zdtmDir)
			break
		}
	}
	feats := &Features{Gockpt: gockptPath, CPUOnly: !needGockpt}
	var passed, failed, skipped int
	kept := false
	start := time.Now()
	for _, t := range tests {
		if err := t.Build(*zdtmDir, *build, *verbose); err != nil {
			fmt.Printf("FAIL %-18s build: %v\n", t.Name, err)
			failed++
			continue
		}
		why, err := feats.Missing(t)
		if err != nil {
			fmt.Printf("FAIL %-18s needs: %v\n", t.Name, err)
			failed++
			continue
		}
		for _, m := range runModes {
			if !t.Supports(m.Name) {
				continue
			}
			label := fmt.Sprintf("%s (%s)", t.Name, m.Name)
			skip := why
			if skip == "" && m.Missing != nil {
				skip = m.Missing(cfg)
			}
			if skip != "" {
				fmt.Printf("SKIP %-28s %s\n", label, skip)
				skipped++
				continue
			}
			dir := filepath.Join(top, t.Name+"-"+m.Name)
			r := &Run{cfg: cfg, test: t, mode: m, dir: dir, out: filepath.Join(dir, "out.log"), pidfile: filepath.Join(dir, "test.pid")}
			t0 := time.Now()
			err := os.Mkdir(dir, 0o777)
			if err == nil {
				// Past the umask: tests that drop to another uid write here too.
				err = os.Chmod(dir, 0o777)
			}
			if err == nil {
				err = r.Execute()
			}
			took := time.Since(t0).Round(10 * time.Millisecond)
			var skipErr *SkipError
			if errors.As(err, &skipErr) {
				fmt.Printf("SKIP %-28s %s\n", label, skipErr.Reason)
				skipped++
				os.RemoveAll(dir)
				continue
			}
			if err == nil {
				note := ""
				if len(r.notes) > 0 {
					note = " (" + strings.Join(r.notes, "; ") + ")"
				}
				fmt.Printf("PASS %-28s %v%s\n", label, took, note)
				passed++
				os.RemoveAll(dir)
				continue
			}
			failed++
			fmt.Printf("FAIL %-28s %v\n%s", label, took, indent(err.Error(), "     "))
			if *keep {
				fmt.Printf("     kept: %s\n", dir)
				kept = true
			} else {
				os.RemoveAll(dir)
			}
		}
	}
	if !kept {
		os.RemoveAll(top)
	}
	if *verbose {
		fmt.Printf("(%v)\n", time.Since(start).Round(time.Second))
	}
	fmt.Printf("zdtm: %d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if failed > 0 {
		return 1
	}
	return 0
}

func selectTests(all []*Test, names string) ([]*Test, error) {
	if names == "" {
		return all, nil
	}
	byName := map[string]*Test{}
	for _, t := range all {
		byName[t.Name] = t
	}
	var out []*Test
	for _, n := range strings.Split(names, ",") {
		t := byName[strings.TrimSpace(n)]
		if t == nil {
			return nil, fmt.Errorf("no test named %q (see -list)", n)
		}
		out = append(out, t)
	}
	return out, nil
}
