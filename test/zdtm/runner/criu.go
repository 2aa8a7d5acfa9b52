package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The criu-* modes prove that CRIU restores gockpt's images (gockpt dumps or
// pre-dumps and dumps, CRIU restores) and that gockpt restores CRIU's (CRIU
// dumps, gockpt restores); the runner's checks and the test's own judge the
// result as in every other mode.

// criuEnv names the CRIU binary the criu-* modes use.
const criuEnv = "GOCKPT_TEST_CRIU"

// defaultCRIU is where the CRIU 4.2 reference binary lives, relative to the
// repository's top directory.
const defaultCRIU = "../shared/anchors/criu-4.2/criu"

// findCRIU returns the CRIU binary to use and, when it cannot run here, why
// (then the criu-* modes are skipped with that reason). zdtmDir is the
// runner's -dir, test/zdtm of the repository.
func findCRIU(zdtmDir string) (path, missing string) {
	path = os.Getenv(criuEnv)
	from := "$" + criuEnv
	if path == "" {
		top, err := filepath.Abs(filepath.Join(zdtmDir, "..", ".."))
		if err != nil {
			return "", err.Error()
		}
		path, from = filepath.Clean(filepath.Join(top, defaultCRIU)), "the default place"
	}
	return path, checkCRIU(path, from)
}

// checkCRIU runs criu --version; it returns "" when that works, else why
// not and what to do.
func checkCRIU(path, from string) string {
	if _, err := os.Stat(path); err != nil {
		return fmt.Sprintf("no CRIU at %s (%s): set %s to a CRIU 4.2 binary to run it", path, from, criuEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Version:") {
		why := strings.TrimSpace(string(out))
		if err != nil {
			why = strings.TrimSpace(err.Error() + ": " + why)
		}
		return fmt.Sprintf("CRIU at %s does not run (%s): install its libraries (install-libs.sh beside it) or set %s", path, lastLines(why, 1), criuEnv)
	}
	return ""
}

func criuMissing(cfg *Config) string { return cfg.CRIUMissing }

// criuLog is CRIU's restore log, in the images directory it restored.
const criuLog = "criu-restore.log"

// CRIURestoreAndVerify has CRIU restore the latest images detached, then
// checks the restored tree as RestoreAndVerify does.
func (r *Run) CRIURestoreAndVerify() error {
	img := r.images[len(r.images)-1]
	// The test's output file is a log shared with others, open for
	// appending: it may grow while the tree is checkpointed, and a restore
	// must not take that for a changed file.
	if err := appendLine(r.out, "# zdtm runner: this line was written while the tree was checkpointed"); err != nil {
		return err
	}
	pidfile := filepath.Join(img, "restore.pid")
	args := append([]string{"restore", "-D", img, "-d", "--pidfile", pidfile, "-o", criuLog, "-v4"}, r.test.Opts...)
	if _, err := r.toolOut("criu", r.cfg.CRIU, "restore", args...); err != nil {
		return fmt.Errorf("%w\n%s", err, criuErrors(filepath.Join(img, criuLog)))
	}
	return r.verifyRestored(pidfile)
}

// criuErrors returns the last error lines of a CRIU log, for the failure
// message (the whole log stays in the work directory with -keep).
func criuErrors(log string) string {
	b, err := os.ReadFile(log)
	if err != nil {
		return fmt.Sprintf("(no CRIU log: %v)", err)
	}
	var errs []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "Error (") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	if len(errs) == 0 {
		return fmt.Sprintf("%s: %s", log, lastLines(string(b), 5))
	}
	if len(errs) > 5 {
		errs = errs[len(errs)-5:]
	}
	return fmt.Sprintf("%s:\n%s", log, strings.Join(errs, "\n"))
}

// criuDumpLog is CRIU's dump log, in the images directory it wrote.
const criuDumpLog = "criu-dump.log"

// CRIUCheckpoint has CRIU dump the tree into a new images directory (which
// kills the tree, as gockpt dump does), its pages through a page server in
// the page-server modes.
func (r *Run) CRIUCheckpoint() error {
	return r.viaPageServer(nil, r.criuCheckpoint)
}

func (r *Run) criuCheckpoint(extra []string) error {
	img := r.newImagesDir()
	// A page server (gockpt's) may have made it already.
	if err := os.MkdirAll(img, 0o700); err != nil {
		return err
	}
	now, err := CollectTree(r.root)
	if err != nil {
		return fmt.Errorf("before dump: %w", err)
	}
	r.last = now
	args := append([]string{"dump", "-t", strconv.Itoa(r.root), "-D", img, "-o", criuDumpLog, "-v4"}, extra...)
	args = append(args, r.test.Opts...)
	if _, err := r.toolOut("criu", r.cfg.CRIU, "dump", args...); err != nil {
		return fmt.Errorf("%w\n%s", err, criuErrors(filepath.Join(img, criuDumpLog)))
	}
	if err := waitGone(sortedKeys(now.Tasks), time.Now().Add(10*time.Second)); err != nil {
		return fmt.Errorf("after criu dump (which should kill the tree): %w", err)
	}
	return nil
}

func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
