// Command criubench runs gockpt and CRIU side by side on the same
// workloads, alternating the two tools run by run, and prints the medians
// of dump and restore times, their ratios gockpt/CRIU and each tool's peak
// RSS as a markdown table; it draws cost against size in a PNG.
//
// Each workload is a small C program compiled at run time (workload.c),
// started in its own session with setsid -f. Before the dump and after the
// restore every task of it answers SIGUSR1 with a checksum of its own state;
// a restore whose checksums differ is a failure, not a time. Run as root:
//
//	criubench [-reps N] [-only REGEX] [-storage tmpfs|disk|both] [-quick]
//	          [-png FILE] [-out FILE.md] [-gockpt BIN] [-criu BIN] [-dump-args ARGS]
//
// With -lazy it runs the post-copy bench instead (lazy.go): lazy restores of
// 16 MiB, 256 MiB and 1 GiB, pages from the images, from a page server on
// loopback, and by faults only:
//
//	criubench -lazy [-reps N] [-only REGEX] [-lazy-settings local,loopback,faults-only]
//	          [-storage tmpfs|disk] [-quick] [-out FILE.md] [-gockpt BIN] [-criu BIN]
//	          [-gockpt-lazy-args ARGS]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	reps        int
	only        string
	storage     string
	quick       bool
	png, out    string
	gockpt      string
	criu        string
	tmpfsDir    string
	diskDir     string
	toolTimeout time.Duration
	dumpArgs    string
	lazy        bool
	lazySets    string
	lazyArgs    string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("criubench", flag.ContinueOnError)
	fs.IntVar(&c.reps, "reps", 3, "runs of each tool on each workload and storage")
	fs.StringVar(&c.only, "only", "", "run only the workloads whose name matches this regular expression")
	fs.StringVar(&c.storage, "storage", "both", "where the images go: tmpfs, disk or both")
	fs.BoolVar(&c.quick, "quick", false, "smoke test: mem-4MiB, tree-10, threads-64, fds-10000, vmas-1000, 1 run unless -reps is given")
	fs.StringVar(&c.png, "png", "bench-criu.png", "PNG of cost against size (empty: none)")
	fs.StringVar(&c.out, "out", "", "also write the markdown table to this file")
	fs.StringVar(&c.gockpt, "gockpt", "bin/gockpt", "gockpt binary")
	criu := os.Getenv("CRIU")
	if criu == "" {
		criu = "../shared/anchors/criu-4.2/criu"
	}
	fs.StringVar(&c.criu, "criu", criu, "CRIU binary (default from $CRIU)")
	fs.StringVar(&c.tmpfsDir, "tmpfs-dir", "/dev/shm", "tmpfs directory for the tmpfs images")
	fs.StringVar(&c.diskDir, "disk-dir", "/var/tmp", "disk directory for the disk images")
	fs.StringVar(&c.dumpArgs, "dump-args", "", "more dump options for both tools, e.g. \"--timeout 300\" (both stop a dump whose freeze takes longer than 10 s by default)")
	fs.DurationVar(&c.toolTimeout, "tool-timeout", 15*time.Minute, "kill a dump or restore command after this long")
	fs.BoolVar(&c.lazy, "lazy", false, "post-copy bench: lazy restores of touch-16MiB, touch-256MiB and touch-1GiB (images on tmpfs unless -storage disk; no PNG)")
	fs.StringVar(&c.lazySets, "lazy-settings", "local,loopback,faults-only", "with -lazy: the settings to run, comma-separated")
	fs.StringVar(&c.lazyArgs, "gockpt-lazy-args", "", "with -lazy: more options for gockpt's lazy-pages daemon, e.g. \"--prefetch 1\" (said in the header)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	repsSet, storageSet := false, false
	fs.Visit(func(f *flag.Flag) {
		repsSet = repsSet || f.Name == "reps"
		storageSet = storageSet || f.Name == "storage"
	})
	if c.lazy && !storageSet {
		c.storage = "tmpfs"
	}
	if c.quick && !repsSet {
		c.reps = 1
	}
	if c.reps < 1 {
		return c, fmt.Errorf("-reps %d: want at least 1", c.reps)
	}
	return c, nil
}

// Storages maps -storage to the storage names, in table order.
func Storages(s string) ([]string, error) {
	switch s {
	case "tmpfs":
		return []string{"tmpfs"}, nil
	case "disk":
		return []string{"disk"}, nil
	case "both":
		return []string{"tmpfs", "disk"}, nil
	}
	return nil, fmt.Errorf("-storage %q: want tmpfs, disk or both", s)
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "criubench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if c.lazy {
		return runLazy(c)
	}
	wls, err := Select(Workloads, c.only, c.quick)
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

	work, err := os.MkdirTemp("", "criubench-")
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
		d, err := os.MkdirTemp(base, "criubench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		imgRoot[st] = d
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &Runner{Workload: bin, WorkDir: work, ToolTimeout: c.toolTimeout, GoneTimeout: time.Minute, Ctx: ctx, DumpArgs: strings.Fields(c.dumpArgs)}
	header := Header(tools, c.reps)
	if c.dumpArgs != "" {
		header += "; dump options " + strings.Join(r.DumpArgs, " ")
	}
	fmt.Fprintln(os.Stderr, header)

	res := Results{}
	total := len(wls) * len(storages) * c.reps * len(tools)
	done := 0
	start := time.Now()
run:
	for _, wl := range wls {
		for _, st := range storages {
			for rep := 1; rep <= c.reps; rep++ {
				for _, t := range tools {
					if ctx.Err() != nil {
						break run
					}
					s := r.Run(t, wl, filepath.Join(imgRoot[st], "img"))
					done++
					fmt.Fprintf(os.Stderr, "[%d/%d %s] %s %s run %d/%d %s: %s\n", done, total,
						time.Since(start).Round(time.Second), st, wl.Name, rep, c.reps, t.Name, describe(s))
					if ctx.Err() != nil {
						break run // a run cut short is not a result
					}
					k := Key{st, wl.Name, t.Name}
					res[k] = append(res[k], s)
				}
			}
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%s; %d runs in %s\n\n", header, done, time.Since(start).Round(time.Second))
	WriteTable(&b, res, storages, wls, tools[0].Name, tools[1].Name)
	fmt.Print(b.String())
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	if c.png != "" {
		ok, err := WritePNG(c.png, res, storages, wls, []string{tools[0].Name, tools[1].Name})
		if err != nil {
			return err
		}
		if ok {
			fmt.Fprintln(os.Stderr, "criubench: wrote", c.png)
		}
	}
	if ctx.Err() != nil {
		return errors.New("interrupted: the table holds the runs that finished")
	}
	return nil
}

// prepare checks what the bench needs (root, both tools, gcc, setsid),
// makes the bench the child subreaper and returns gockpt and CRIU, in that
// order, with absolute paths.
func prepare(c config) ([]Tool, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: both tools need it to dump and restore")
	}
	tools := []Tool{{Name: "gockpt", Path: c.gockpt}, {Name: "CRIU", Path: c.criu}}
	for i, t := range tools {
		p, err := filepath.Abs(t.Path)
		if err == nil {
			_, err = exec.LookPath(p)
		}
		if err != nil {
			return nil, fmt.Errorf("%s binary %s: %w", t.Name, t.Path, err)
		}
		tools[i].Path = p
	}
	for _, prog := range []string{"gcc", "setsid"} {
		if _, err := exec.LookPath(prog); err != nil {
			return nil, fmt.Errorf("%s is needed: %w", prog, err)
		}
	}
	if err := becomeSubreaper(); err != nil {
		return nil, err
	}
	return tools, nil
}

// Header says what ran where: tool versions, kernel, CPUs, runs.
func Header(tools []Tool, reps int) string {
	var parts []string
	for _, t := range tools {
		out, _ := exec.Command(t.Path, "--version").CombinedOutput()
		v := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		parts = append(parts, fmt.Sprintf("%s (%s)", t.Name, v))
	}
	var u unix.Utsname
	kernel := "?"
	if unix.Uname(&u) == nil {
		kernel = unix.ByteSliceToString(u.Release[:])
	}
	return fmt.Sprintf("criubench: %s; Linux %s, %d CPUs; medians of %d runs per tool, alternating; %s",
		strings.Join(parts, " vs "), kernel, runtime.NumCPU(), reps, time.Now().Format("2006-01-02 15:04"))
}

func describe(s Sample) string {
	d := "dump FAIL: " + oneLine(s.DumpErr)
	if s.DumpOK() {
		d = fmt.Sprintf("dump %.3f s (RSS %d MiB, images %s MiB)", s.Dump.Seconds(), s.DumpRSS/1024, formatMiB(s.ImageBytes))
	}
	if s.RestoreOK() {
		return d + fmt.Sprintf(", restore %.3f s (RSS %d MiB), checked", s.Restore.Seconds(), s.RestoreRSS/1024)
	}
	if strings.HasPrefix(s.RestoreErr, "not reached") && !s.DumpOK() {
		return d
	}
	return d + ", restore FAIL: " + oneLine(s.RestoreErr)
}
