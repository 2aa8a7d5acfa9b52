package restore

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/testproc"
	pb "github.com/gockpt/gockpt/proto"
)

// imageFiles lists the image files of dir, sorted.
func imageFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if images.IsImageName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func unfinishedMessage(t *testing.T, dir string) string {
	n := 0
	for _, f := range imageFiles(t, dir) {
		if f != images.ParentLink {
			n++
		}
	}
	return fmt.Sprintf("no inventory.img in %s: the dump into it did not finish (%d other image files are there); dump again", dir, n)
}

// fdLinks lists a task's fds and what they point to.
func fdLinks(pid int) map[string]string {
	out := map[string]string{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if strings.HasPrefix(l, "pipe:") {
			l = "pipe" // a restored pipe is a new one
		}
		out[e.Name()] = l
	}
	return out
}

// TestDumpRefusedMidwayThenDumped: a dump of A refused after it wrote part
// of its images (A's fd table among them) leaves no inventory.img, so
// restore refuses the directory; B dumped into it next writes a whole set
// of its own (its fd table too, though A's has the same name), which
// restores B with B's fds.
func TestDumpRefusedMidwayThenDumped(t *testing.T) {
	a := startTarget(t, "../dump/testdata/patterns.c", "1", "1")
	refusal := errors.New("refused midway (test)")
	_, err := dump.Run(dump.Options{Pid: a.pid, ImagesDir: a.imgs,
		AfterTask: func(pid int) error {
			if pid == a.pid {
				return refusal
			}
			return nil
		}})
	if !errors.Is(err, refusal) {
		t.Fatalf("dump: %v, want the refusal", err)
	}
	if _, err := os.Stat(filepath.Join(a.imgs, images.FdinfoFile(2))); err != nil {
		t.Fatalf("the refused dump should have written A's fd table: %v", err)
	}
	want := unfinishedMessage(t, a.imgs)
	if _, err := Run(Options{ImagesDir: a.imgs}); err == nil || err.Error() != want {
		t.Fatalf("restore after a refused dump: %v\nwant %s", err, want)
	}
	a.expectProgress(t) // the refused dump left A running

	b := startTarget(t, "testdata/threads.c")
	b.imgs = a.imgs
	fds := fdLinks(b.pid)
	b.dump(t)
	b.restore(t)
	b.expectProgress(t)
	if got := fdLinks(b.pid); fmt.Sprint(got) != fmt.Sprint(fds) {
		t.Fatalf("B restored with fds %v, had %v", got, fds)
	}
}

// TestDumpOverAnotherDump: B dumped into A's directory restores as B, and
// none of A's images is left.
func TestDumpOverAnotherDump(t *testing.T) {
	a := startTarget(t, "../dump/testdata/patterns.c", "2", "1")
	var aTids []int
	for _, pid := range append(testproc.Descendants(a.pid), a.pid) {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, e := range ents {
			var n int
			fmt.Sscan(e.Name(), &n)
			aTids = append(aTids, n)
		}
	}
	if _, err := dump.Run(dump.Options{Pid: a.pid, ImagesDir: a.imgs, LeaveRunning: true}); err != nil {
		t.Fatal(err)
	}
	if !contains(imageFiles(t, a.imgs), "pages-2.img") {
		t.Fatalf("A's dump (two tasks) should have pages-1.img and pages-2.img: %v", imageFiles(t, a.imgs))
	}
	// A's files are dated an hour back: one B's dump leaves alone keeps
	// that date, whatever the granularity of the kernel's file times
	// (coarser than time.Now's: a file written just after a fine-grained
	// "now" could carry a time just before it).
	old := time.Now().Add(-time.Hour)
	for _, f := range imageFiles(t, a.imgs) {
		if err := os.Chtimes(filepath.Join(a.imgs, f), old, old); err != nil {
			t.Fatal(err)
		}
	}
	b := startTarget(t, "testdata/threads.c")
	b.imgs = a.imgs
	b.dump(t)
	for _, f := range imageFiles(t, b.imgs) {
		fi, err := os.Lstat(filepath.Join(b.imgs, f))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().After(old.Add(time.Minute)) {
			t.Errorf("%s is left from A's dump", f)
		}
		for _, tid := range aTids {
			if strings.HasSuffix(f, fmt.Sprintf("-%d.img", tid)) {
				t.Errorf("%s of A's task %d is still there", f, tid)
			}
		}
	}
	res := b.restore(t)
	if res.RootPid != b.pid {
		t.Fatalf("restored %d, want B (%d)", res.RootPid, b.pid)
	}
	b.expectProgress(t)
	a.expectProgress(t)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestDumpKilledHalfway: a dump SIGKILLed while it writes pages leaves a
// directory restore refuses, saying the dump did not finish.
func TestDumpKilledHalfway(t *testing.T) {
	gockpt := testproc.BuildGockpt(t)
	bin := testproc.BuildC(t, "../dump/testdata/bigmem.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir, "256")
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 30*time.Second)
	img := filepath.Join(t.TempDir(), "img")
	cmd := exec.Command(gockpt, "dump", "-t", fmt.Sprint(p.Pid), "-D", img)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it has started writing the pages.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := os.Stat(filepath.Join(img, "pages-1.img"))
		if err == nil && st.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the dump wrote no pages")
		}
		time.Sleep(100 * time.Microsecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(img, images.InventoryFile)); err == nil {
		t.Fatal("a dump killed while writing pages left an inventory.img")
	}
	if !testproc.Alive(p.Pid) {
		t.Fatal("the killed dump harmed its target")
	}
	want := unfinishedMessage(t, img)
	if _, err := Run(Options{ImagesDir: img}); err == nil || err.Error() != want {
		t.Fatalf("restore after a killed dump: %v\nwant %s", err, want)
	}
}

// TestRestoreRefusesMismatchedImages: images that disagree are refused
// before any task is created, naming the first mismatch.
func TestRestoreRefusesMismatchedImages(t *testing.T) {
	tg := startTarget(t, "../dump/testdata/patterns.c", "1", "1")
	child := testproc.Descendants(tg.pid)[0]
	threads := func() []int {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", tg.pid))
		var out []int
		for _, e := range ents {
			var n int
			fmt.Sscan(e.Name(), &n)
			if n != tg.pid {
				out = append(out, n)
			}
		}
		return out
	}()
	tg.dump(t)
	good := tg.imgs
	mismatch := func(msg string) string {
		return fmt.Sprintf("the images in %%s do not agree with each other: %s; they are not one checkpoint (a dump that did not finish, or files of two dumps): dump again into an empty directory", msg)
	}
	cases := []struct {
		name   string
		damage func(dir string)
		want   string
	}{
		{"thread core missing", func(dir string) {
			os.Remove(filepath.Join(dir, images.CoreFile(threads[0])))
		}, mismatch(fmt.Sprintf("pstree.img lists thread %d of task %d, but core-%d.img is missing", threads[0], tg.pid, threads[0]))},
		{"mm missing", func(dir string) {
			os.Remove(filepath.Join(dir, images.MMFile(child)))
		}, mismatch(fmt.Sprintf("pstree.img lists task %d, but mm-%d.img is missing", child, child))},
		{"pagemap missing", func(dir string) {
			os.Remove(filepath.Join(dir, images.PagemapFile(child)))
		}, mismatch(fmt.Sprintf("task %d: pagemap-%d.img is missing", child, child))},
		{"file id missing", func(dir string) {
			rewriteFiles(t, dir, func(f *pb.FileEntry) bool { return f.GetId() != lastFd(t, dir, tg.pid).GetId() })
		}, mismatch(fmt.Sprintf("task %d fd %d: file id %d is not in files.img", tg.pid, lastFd(t, good, tg.pid).GetFd(), lastFd(t, good, tg.pid).GetId()))},
		{"stray core", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, images.CoreFile(tg.pid)))
			os.WriteFile(filepath.Join(dir, "core-999999.img"), b, 0o600)
		}, mismatch("core-999999.img belongs to no task of pstree.img")},
		{"pages cut short", func(dir string) {
			p := filepath.Join(dir, "pages-2.img")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o600)
		}, "pages-2.img holds"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "img")
			copyDir(t, good, dir)
			c.damage(dir)
			sum := hashDir(t, dir)
			_, err := Run(Options{ImagesDir: dir})
			want := c.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, dir)
			}
			if err == nil || !(err.Error() == want || !strings.HasPrefix(want, "the images") && strings.Contains(err.Error(), want)) {
				t.Fatalf("restore: %v\nwant %s", err, want)
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("restore: %v is not a MismatchError", err)
			}
			for _, pid := range []int{tg.pid, child} {
				if testproc.Alive(pid) {
					t.Fatalf("task %d was created by a refused restore", pid)
				}
			}
			if hashDir(t, dir) != sum {
				t.Error("the refused restore changed the images")
			}
		})
	}
	// The undamaged images still restore.
	tg.restore(t)
	tg.expectProgress(t)
}

// lastFd is the highest fd of task pid in the images of dir.
func lastFd(t *testing.T, dir string, pid int) *pb.FdinfoEntry {
	t.Helper()
	d, _ := images.OpenDir(dir)
	var ids pb.TaskKobjIdsEntry
	if err := d.ReadOne(images.IDsFile(pid), &ids); err != nil {
		t.Fatal(err)
	}
	fds, _, err := readEntries(d, images.FdinfoFile(ids.GetFilesId()), func() *pb.FdinfoEntry { return &pb.FdinfoEntry{} })
	if err != nil || len(fds) == 0 {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	return fds[len(fds)-1]
}

// rewriteFiles keeps the files.img entries keep says to keep.
func rewriteFiles(t *testing.T, dir string, keep func(*pb.FileEntry) bool) {
	t.Helper()
	d, _ := images.OpenDir(dir)
	files, _, err := readEntries(d, images.FilesFile, func() *pb.FileEntry { return &pb.FileEntry{} })
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.Create(images.FilesFile, images.KindFiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if keep(f) {
			if err := w.WriteEntry(proto.Clone(f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(from)
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(to, e.Name()), b, 0o600)
	}
}
