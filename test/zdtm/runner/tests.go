package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Test is one zdtm test program and what its header says about it.
type Test struct {
	Name   string
	Lang   string // c, go or python
	Source string // the file holding the header
	Desc   string
	Modes  []string
	Needs  []string // gockpt check feature names, or cpu:FLAG
	UID    int      // -1: not declared
	GID    int
	Env    []string
	CFlags []string
	// Opts are options given to every dump and restore of the test, by
	// gockpt and by CRIU alike ("opts: --file-locks"), not to pre-dumps.
	Opts []string
	Argv []string // command prefix, filled in by Build

	DynamicThreads bool // "threads: dynamic": the runtime adds threads on its own
}

// defaultModes are the checkpoint modes a test runs in when its header says nothing.
var defaultModes = []string{"restore", "snapshot", "twice", "predump", "page-server", "predump-page-server", "lazy", "lazy-faults", "predump-lazy"}

// knownOpts are the options an "opts:" line may name: those gockpt and
// CRIU both take, with one meaning, at dump and at restore.
var knownOpts = map[string]bool{"--file-locks": true, "--tcp-established": true}

var headerLine = regexp.MustCompile(`^\s*(?://|#)\s*zdtm:\s*([a-z_]+):\s*(.*?)\s*$`)

// ParseHeader reads the "zdtm: key: value" comment lines of a test source.
func ParseHeader(r io.Reader, t *Test) error {
	t.UID, t.GID = -1, -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := headerLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		key, val := m[1], m[2]
		var err error
		switch key {
		case "desc":
			t.Desc = val
		case "modes":
			t.Modes = strings.Fields(val)
		case "needs":
			t.Needs = append(t.Needs, strings.Fields(val)...)
		case "uid":
			t.UID, err = strconv.Atoi(val)
		case "gid":
			t.GID, err = strconv.Atoi(val)
		case "env":
			if !strings.Contains(val, "=") {
				err = fmt.Errorf("env %q is not NAME=value", val)
			}
			t.Env = append(t.Env, val)
		case "threads":
			if val != "dynamic" {
				err = fmt.Errorf("threads %q: only \"dynamic\" is known", val)
			}
			t.DynamicThreads = true
		case "cflags":
			t.CFlags = append(t.CFlags, strings.Fields(val)...)
		case "opts":
			for _, o := range strings.Fields(val) {
				if !knownOpts[o] {
					err = fmt.Errorf("opts: %q is not an option both gockpt and CRIU take at dump and restore", o)
					break
				}
				t.Opts = append(t.Opts, o)
			}
		default:
			err = fmt.Errorf("unknown header key %q", key)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.Source, err)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if t.Desc == "" {
		return fmt.Errorf("%s: no \"zdtm: desc:\" line", t.Source)
	}
	if t.Modes == nil {
		t.Modes = defaultModes
	}
	for _, m := range t.Modes {
		if name, ok := strings.CutPrefix(m, "-"); ok {
			if mode := findMode(name); mode == nil || mode.With == "" {
				return fmt.Errorf("%s: %q: only a mode that comes with another (a page-server or lazy mode) can be excluded", t.Source, m)
			}
			if slices.Contains(t.Modes, name) {
				return fmt.Errorf("%s: mode %q both named and excluded", t.Source, name)
			}
			continue
		}
		if findMode(m) == nil {
			return fmt.Errorf("%s: unknown mode %q", t.Source, m)
		}
	}
	return nil
}

// Supports says whether the test runs in a mode; every test runs without
// C/R, every test that can be snapshotted can be dumped alone, and a mode
// that comes With another runs where that one does unless the header
// excludes it ("-NAME").
func (t *Test) Supports(mode string) bool {
	if mode == "none" || mode == "dump" && t.Supports("snapshot") {
		return true
	}
	if slices.Contains(t.Modes, mode) {
		return true
	}
	if slices.Contains(t.Modes, "-"+mode) {
		return false
	}
	if m := findMode(mode); m != nil && m.With != "" {
		return t.Supports(m.With)
	}
	return false
}

// RunModes are the checkpoint modes the test runs in, in the order of the
// modes table (none and dump, which every test runs, left out).
func (t *Test) RunModes() []string {
	var out []string
	for _, m := range modes {
		if m.Name != "none" && m.Name != "dump" && t.Supports(m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// Discover finds the tests under dir (test/zdtm).
func Discover(dir string) ([]*Test, error) {
	var tests []*Test
	add := func(name, lang, src string) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		t := &Test{Name: name, Lang: lang, Source: src}
		if err := ParseHeader(f, t); err != nil {
			return err
		}
		tests = append(tests, t)
		return nil
	}
	cs, _ := filepath.Glob(filepath.Join(dir, "static", "*.c"))
	for _, c := range cs {
		if err := add(strings.TrimSuffix(filepath.Base(c), ".c"), "c", c); err != nil {
			return nil, err
		}
	}
	gos, _ := filepath.Glob(filepath.Join(dir, "go", "*", "main.go"))
	for _, g := range gos {
		if err := add("go_"+filepath.Base(filepath.Dir(g)), "go", g); err != nil {
			return nil, err
		}
	}
	pys, _ := filepath.Glob(filepath.Join(dir, "python", "*.py"))
	for _, p := range pys {
		if err := add(strings.TrimSuffix(filepath.Base(p), ".py"), "python", p); err != nil {
			return nil, err
		}
	}
	sort.Slice(tests, func(i, j int) bool { return tests[i].Name < tests[j].Name })
	return tests, nil
}

// Build compiles the test into buildDir (skipped when the binary is newer
// than its sources) and sets its command line.
func (t *Test) Build(zdtmDir, buildDir string, verbose bool) error {
	bin, err := filepath.Abs(filepath.Join(buildDir, t.Name))
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	switch t.Lang {
	case "python":
		src, err := filepath.Abs(t.Source)
		if err != nil {
			return err
		}
		t.Argv = []string{"python3", src}
		return nil
	case "c":
		lib := filepath.Join(zdtmDir, "lib")
		srcs := []string{t.Source, filepath.Join(lib, "zdtmtst.c"), filepath.Join(lib, "zdtmtst.h")}
		t.Argv = []string{bin}
		if upToDate(bin, srcs) {
			return nil
		}
		args := []string{"-O2", "-g", "-Wall", "-pthread", "-I", lib}
		args = append(args, t.CFlags...)
		args = append(args, "-o", bin, t.Source, filepath.Join(lib, "zdtmtst.c"))
		cmd = exec.Command("gcc", args...)
	case "go":
		t.Argv = []string{bin}
		srcs, _ := filepath.Glob(filepath.Join(filepath.Dir(t.Source), "*.go"))
		if upToDate(bin, srcs) {
			return nil
		}
		cmd = exec.Command("go", "build", "-o", bin, "./"+filepath.Dir(t.Source))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	default:
		return fmt.Errorf("test %s: unknown language %q", t.Name, t.Lang)
	}
	if verbose {
		fmt.Println("  build:", strings.Join(cmd.Args, " "))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", t.Name, err, out)
	}
	return nil
}

func upToDate(bin string, srcs []string) bool {
	bi, err := os.Stat(bin)
	if err != nil {
		return false
	}
	for _, s := range srcs {
		si, err := os.Stat(s)
		if err != nil || si.ModTime().After(bi.ModTime()) {
			return false
		}
	}
	return true
}

// Features answers "needs:" lines: cpu:FLAG from /proc/cpuinfo, anything else
// from gockpt check --feature NAME. Answers are cached.
type Features struct {
	Gockpt  string
	CPUOnly bool // no checkpoint modes run: gockpt features do not matter
	cpu     map[string]bool
	checked map[string]string // feature -> "" (present) or why not
}

// Missing returns why the test cannot run here, or "" if it can. An error
// (an unknown feature name, gockpt failing) is not a reason to skip.
func (f *Features) Missing(t *Test) (string, error) {
	for _, n := range t.Needs {
		why, err := f.missing(n)
		if err != nil || why != "" {
			return why, err
		}
	}
	return "", nil
}

func (f *Features) missing(name string) (string, error) {
	if flag, ok := strings.CutPrefix(name, "cpu:"); ok {
		if f.cpu == nil {
			f.cpu = cpuFlags()
		}
		if !f.cpu[flag] {
			return fmt.Sprintf("CPU lacks %s (/proc/cpuinfo flags)", flag), nil
		}
		return "", nil
	}
	if f.CPUOnly {
		return "", nil
	}
	if f.checked == nil {
		f.checked = map[string]string{}
	}
	if why, ok := f.checked[name]; ok {
		return why, nil
	}
	out, err := exec.Command(f.Gockpt, "check", "--feature", name).CombinedOutput()
	why := ""
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		// Exit 1 is gockpt's "this kernel lacks it"; anything else is a failure.
		why = fmt.Sprintf("gockpt check --feature %s: %s", name, strings.TrimSpace(string(out)))
	default:
		return "", fmt.Errorf("gockpt check --feature %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	f.checked[name] = why
	return why, nil
}

func cpuFlags() map[string]bool {
	out := map[string]bool{}
	s, err := readString("/proc/cpuinfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				out[f] = true
			}
			break
		}
	}
	return out
}
