package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// dirBytes adds up the sizes of the regular files of dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if e.Type().IsRegular() {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
	}
	return n
}

func parsePagemap(t *testing.T, path string) []pagemap.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, entries, err := pagemap.Parse(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

var makeLazySummary = regexp.MustCompile(`^SRC (\S+): .* \((\d+) bytes\) in \d+ files\nDST (\S+): .* \((\d+) bytes\) in \d+ files\n(\d+) pages \(.*\) of 1 task left to be served lazily; (\d+) pages restored from DST\npost-copy restore: gockpt lazy-pages -D (\S+), then gockpt restore --lazy-pages -D (\S+)\n$`)

// TestMakeLazyDump: the images of a real dump (64 MiB of anonymous memory)
// made lazy: DST is small, its pagemaps cover what SRC's do with the lazy
// runs PE_LAZY alone, show and decode read it, and SRC still restores.
func TestMakeLazyDump(t *testing.T) {
	p, pdir := startPattern(t)
	pid := strconv.Itoa(p.Pid)
	root := t.TempDir()
	src, dst := filepath.Join(root, "src"), filepath.Join(root, "dst")
	gockpt(t, "dump", "-t", pid, "-D", src)
	p.Cmd.Wait()
	waitPidsFree(t, []int{p.Pid})

	code, out, errOut := runCLI(t, "image", "make-lazy", src, dst)
	if code != 0 {
		t.Fatalf("make-lazy: exit %d: %s", code, errOut)
	}
	m := makeLazySummary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("make-lazy printed:\n%s", out)
	}
	srcBytes, dstBytes := dirBytes(t, src), dirBytes(t, dst)
	if m[1] != src || m[3] != dst || m[7] != src || m[8] != dst || m[2] != strconv.FormatInt(srcBytes, 10) || m[4] != strconv.FormatInt(dstBytes, 10) {
		t.Errorf("make-lazy summary does not match the directories (SRC %d bytes, DST %d):\n%s", srcBytes, dstBytes, out)
	}
	// What stays in DST is python's writable file-backed data (libpython's
	// alone is some 1.3 MiB), the stack pages and the small images.
	if srcBytes < 64<<20 || dstBytes > 4<<20 {
		t.Errorf("SRC %d bytes, DST %d: want SRC over 64 MiB and DST under 4 MiB", srcBytes, dstBytes)
	}
	t.Logf("SRC %d bytes, DST %d bytes", srcBytes, dstBytes)

	// Every task pagemap: the same runs; lazy ones lose PE_PRESENT.
	pms, _ := filepath.Glob(filepath.Join(src, "pagemap-*.img"))
	if len(pms) == 0 {
		t.Fatal("no pagemap in SRC")
	}
	var lazyPages uint64
	for _, pm := range pms {
		a := parsePagemap(t, pm)
		b := parsePagemap(t, filepath.Join(dst, filepath.Base(pm)))
		if len(a) != len(b) {
			t.Fatalf("%s: %d runs in SRC, %d in DST", filepath.Base(pm), len(a), len(b))
		}
		for i := range a {
			want := a[i]
			if want.Flags == pagemap.FlagPresent|pagemap.FlagLazy {
				want.Flags = pagemap.FlagLazy
				lazyPages += want.NrPages
			}
			if b[i] != want {
				t.Errorf("%s run %d: %v in DST, want %v", filepath.Base(pm), i, b[i], want)
			}
		}
	}
	// The pages DST keeps are SRC's.
	sd, _ := images.OpenDir(src)
	dd, _ := images.OpenDir(dst)
	sr, err := pagemap.Open(sd, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	dr, err := pagemap.Open(dd, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	for _, e := range dr.Entries() {
		if e.Flags != pagemap.FlagPresent {
			continue
		}
		a, b := make([]byte, e.NrPages*pagemap.PageSize), make([]byte, e.NrPages*pagemap.PageSize)
		if err := sr.ReadAt(a, e.Vaddr); err != nil {
			t.Fatal(err)
		}
		if err := dr.ReadAt(b, e.Vaddr); err != nil || !bytes.Equal(a, b) {
			t.Errorf("DST's pages of %v differ from SRC's (%v)", e, err)
		}
	}
	if lazyPages < 16384 || m[5] != strconv.FormatUint(lazyPages, 10) {
		t.Errorf("%d lazy pages in the pagemaps, %s in the summary: want the 16384 pages of the pattern at least", lazyPages, m[5])
	}

	// show and decode read DST's pagemaps.
	code, out, errOut = runCLI(t, "image", "show", dst)
	if code != 0 || !strings.Contains(out, " lazy\n") || !strings.Contains(out, "task "+pid+" ") {
		t.Errorf("image show DST: exit %d: %s%s", code, out, errOut)
	}
	if want := ", 0 in parent, " + m[5] + " lazy\n"; !strings.Contains(out, want) {
		t.Errorf("image show DST lacks %q:\n%s", want, out)
	}
	code, out, errOut = runCLI(t, "image", "decode", "--pretty", "-i", filepath.Join(dst, "pagemap-"+pid+".img"))
	if code != 0 || !strings.Contains(out, `"flags": "PE_LAZY"`) || !strings.Contains(out, `"flags": "PE_PRESENT"`) || strings.Contains(out, "PE_LAZY | PE_PRESENT") {
		t.Errorf("image decode DST's pagemap: exit %d: %.3000s%s", code, out, errOut)
	}
	if code, out, errOut = runCLI(t, "image", "x", dst, "rss"); code != 0 {
		t.Errorf("image x DST rss: exit %d: %s%s", code, out, errOut)
	}

	// SRC is as it was: it restores, every page right.
	gockpt(t, "restore", "-D", src, "-d")
	t.Cleanup(func() { killRestored(p.Pid) })
	verifyPattern(t, p.Pid, pdir)
}

// TestMakeLazyCLI: the help tells the post-copy recipe; refusals say what
// was found and what to do, and leave nothing behind.
func TestMakeLazyCLI(t *testing.T) {
	code, out, _ := runCLI(t, "image", "make-lazy", "--help")
	for _, s := range []string{"gockpt image make-lazy SRC DST", "PE_LAZY alone",
		"gockpt lazy-pages -D SRC", "gockpt restore --lazy-pages -D DST"} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("make-lazy --help (exit %d) lacks %q:\n%s", code, s, out)
		}
	}
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "make-lazy", empty},
			"Error: make-lazy takes the images directory of a dump and a new directory, got 1 argument(s): gockpt image make-lazy SRC DST\nRun 'gockpt image make-lazy --help' for usage.\n"},
		{[]string{"image", "make-lazy", empty, filepath.Join(tmp, "dst")},
			"Error: SRC " + empty + " holds no inventory.img: it is not an images directory, or its dump did not finish; give the directory of a complete dump\n"},
		{[]string{"image", "make-lazy", filepath.Join(tmp, "none"), filepath.Join(tmp, "dst")},
			"Error: SRC " + tmp + "/none does not exist: give the images directory of a dump\n"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != 1 || out != "" || errOut != c.want {
			t.Errorf("%q: exit %d, stdout %q, stderr\n%q\nwant\n%q", c.args, code, out, errOut, c.want)
		}
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 2 {
		t.Errorf("refused make-lazy left %d entries in %s, want 2", len(ents), tmp)
	}
}
