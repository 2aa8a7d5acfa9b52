package restore

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/testproc"
	pb "github.com/gockpt/gockpt/proto"
)

// target is a test program, dumped and restored.
type target struct {
	proc *testproc.Proc
	pid  int
	dir  string
	imgs string
}

// startTarget starts a program from ../dump/testdata (or testdata) that
// writes DIR/ready and logs "ok N" lines to DIR/log.
func startTarget(t *testing.T, src string, args ...string) *target {
	t.Helper()
	bin := testproc.BuildC(t, src, "-lrt")
	dir := t.TempDir()
	p := testproc.Start(t, bin, append([]string{dir}, args...)...)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	return &target{proc: p, pid: p.Pid, dir: dir, imgs: filepath.Join(t.TempDir(), "img")}
}

func (tg *target) dump(t *testing.T) {
	t.Helper()
	tree := append(testproc.Descendants(tg.pid), tg.pid)
	if _, err := dump.Run(dump.Options{Pid: tg.pid, ImagesDir: tg.imgs}); err != nil {
		t.Fatal(err)
	}
	// The default dump kills the tree; reap the root (we are its parent)
	// and wait for its orphaned children to be reaped by init.
	tg.proc.Cmd.Wait()
	for _, pid := range tree {
		waitGone(t, pid)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %d still exists after the dump killed it", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// restore restores the images and makes sure the tree is killed and reaped
// at the end of the test.
func (tg *target) restore(t *testing.T) *Result {
	t.Helper()
	res, err := Run(Options{ImagesDir: tg.imgs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testproc.KillTree(res.RootPid)
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
	})
	return res
}

func (tg *target) logLines() []string {
	b, _ := os.ReadFile(filepath.Join(tg.dir, "log"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// expectProgress waits for new self-check lines from the restored program
// and fails on any that is not "ok".
func (tg *target) expectProgress(t *testing.T) {
	t.Helper()
	before := len(tg.logLines())
	deadline := time.Now().Add(10 * time.Second)
	for len(tg.logLines()) < before+12 {
		if !testproc.Alive(tg.pid) {
			t.Fatalf("restored task %d died; log tail: %v", tg.pid, tail(tg.logLines()))
		}
		if time.Now().After(deadline) {
			t.Fatalf("restored task %d makes no progress; log tail: %v", tg.pid, tail(tg.logLines()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range tg.logLines() {
		if strings.HasPrefix(l, "BAD") {
			t.Fatalf("restored task reported %q", l)
		}
	}
}

func tail(l []string) []string {
	if len(l) > 3 {
		return l[len(l)-3:]
	}
	return l
}

// hashDir fingerprints every file of an images directory.
func hashDir(t *testing.T, dir string) string {
	h := sha256.New()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		fi, _ := d.Info()
		fmt.Fprintf(h, "%s %v %x\n", p, fi.Mode(), sha256.Sum256(b))
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestRestorePatterns(t *testing.T) {
	tg := startTarget(t, "../dump/testdata/patterns.c", "0", "0")
	mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", tg.pid))
	tg.dump(t)
	sum := hashDir(t, tg.imgs)
	res := tg.restore(t)
	if res.RootPid != tg.pid {
		t.Fatalf("restored root PID %d, want %d", res.RootPid, tg.pid)
	}
	tg.expectProgress(t)
	mapsAfter, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", tg.pid))
	if !sameMaps(mapsBefore, mapsAfter) {
		t.Errorf("maps differ after restore:\n%s\n---\n%s", mapsBefore, mapsAfter)
	}
	if hashDir(t, tg.imgs) != sum {
		t.Error("restore modified the images")
	}
}

// sameMaps compares two /proc/PID/maps texts after merging adjacent areas
// the kernel may or may not merge (same permissions and backing, contiguous
// offsets): a restored task's mappings are made afresh, and the kernel merges
// fresh neighbours that the original's history kept apart.
func sameMaps(a, b []byte) bool {
	return bytes.Equal(mergedMaps(a), mergedMaps(b))
}

func mergedMaps(text []byte) []byte {
	type area struct {
		start, end, off uint64
		perms, dev, ino string
		path            string
	}
	var out []area
	for _, l := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		var a area
		fmt.Sscanf(f[0], "%x-%x", &a.start, &a.end)
		fmt.Sscanf(f[2], "%x", &a.off)
		a.perms, a.dev, a.ino = f[1], f[3], f[4]
		if len(f) > 5 {
			a.path = strings.Join(f[5:], " ")
		}
		if n := len(out); n > 0 {
			p := &out[n-1]
			contiguous := p.end == a.start && p.perms == a.perms && p.dev == a.dev && p.ino == a.ino && p.path == a.path &&
				(a.ino == "0" || p.off+(p.end-p.start) == a.off) && !strings.HasPrefix(a.path, "[")
			if contiguous {
				p.end = a.end
				continue
			}
		}
		out = append(out, a)
	}
	var b bytes.Buffer
	for _, a := range out {
		fmt.Fprintf(&b, "%x-%x %s %x %s %s %s\n", a.start, a.end, a.perms, a.off, a.dev, a.ino, a.path)
	}
	return b.Bytes()
}

func TestRestoreTwiceInARow(t *testing.T) {
	tg := startTarget(t, "../dump/testdata/patterns.c", "2", "0")
	tg.dump(t)
	res := tg.restore(t)
	tg.expectProgress(t)
	testproc.KillTree(res.RootPid)
	var ws unix.WaitStatus
	unix.Wait4(res.RootPid, &ws, 0, nil)
	waitGone(t, tg.pid)
	tg.restore(t)
	tg.expectProgress(t)
}

func TestRestoreFailsCleanly(t *testing.T) {
	t.Run("pid taken", func(t *testing.T) {
		tg := startTarget(t, "../dump/testdata/patterns.c", "0", "1")
		if _, err := dump.Run(dump.Options{Pid: tg.pid, ImagesDir: tg.imgs, LeaveRunning: true}); err != nil {
			t.Fatal(err)
		}
		sum := hashDir(t, tg.imgs)
		_, err := Run(Options{ImagesDir: tg.imgs})
		want := fmt.Sprintf("PID %d is taken by another process", tg.pid)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("restore over a running tree: %v; want %q", err, want)
		}
		if hashDir(t, tg.imgs) != sum {
			t.Error("failed restore modified the images")
		}
	})
	t.Run("child fails", func(t *testing.T) {
		// The root comes back, its child cannot (its pages are cut short):
		// the root must go again, and so must the child.
		tg := startTarget(t, "../dump/testdata/patterns.c", "0", "1")
		child := testproc.Descendants(tg.pid)[0]
		tg.dump(t)
		// The child's working directory becomes its executable, a file:
		// the images agree, but its chdir fails, after the root is made.
		d, _ := images.OpenDir(tg.imgs)
		var mm pb.MmEntry
		var fsEntry pb.FsEntry
		if err := d.ReadOne(images.MMFile(child), &mm); err != nil {
			t.Fatal(err)
		}
		if err := d.ReadOne(images.FSFile(child), &fsEntry); err != nil {
			t.Fatal(err)
		}
		fsEntry.CwdId = proto.Uint32(mm.GetExeFileId())
		if err := d.WriteOne(images.FSFile(child), images.KindFS, &fsEntry); err != nil {
			t.Fatal(err)
		}
		_, err := Run(Options{ImagesDir: tg.imgs})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("task %d", child)) || !strings.Contains(err.Error(), "chdir") {
			t.Fatalf("restore with the child's cwd a file: %v", err)
		}
		for _, pid := range []int{tg.pid, child} {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
				t.Fatalf("task %d left behind by a failed restore", pid)
			}
		}
	})
	t.Run("missing file", func(t *testing.T) {
		tg := startTarget(t, "../dump/testdata/patterns.c", "0", "0")
		tg.dump(t)
		os.Rename(filepath.Join(tg.dir, "mapped"), filepath.Join(tg.dir, "moved"))
		_, err := Run(Options{ImagesDir: tg.imgs})
		want := fmt.Sprintf("file %s is gone since the dump", filepath.Join(tg.dir, "mapped"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("restore without the mapped file: %v; want %q", err, want)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", tg.pid)); err == nil {
			t.Fatalf("task %d left behind by a failed restore", tg.pid)
		}
	})
	t.Run("corrupted core", func(t *testing.T) {
		tg := startTarget(t, "../dump/testdata/patterns.c", "0", "0")
		tg.dump(t)
		core := filepath.Join(tg.imgs, fmt.Sprintf("core-%d.img", tg.pid))
		b, _ := os.ReadFile(core)
		os.WriteFile(core, b[:len(b)/2], 0o600)
		_, err := Run(Options{ImagesDir: tg.imgs})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("core-%d.img", tg.pid)) {
			t.Fatalf("restore with a truncated core image: %v", err)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", tg.pid)); err == nil {
			t.Fatalf("task %d left behind by a failed restore", tg.pid)
		}
	})
}

var _ = syscall.SIGKILL
