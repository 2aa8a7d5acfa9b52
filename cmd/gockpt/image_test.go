package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

const criuFixture = "/work/shared/testdata/criu-4.2/counter"

func needFixture(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(criuFixture); err != nil {
		t.Skipf("CRIU fixture not available: %v", err)
	}
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestImageDecodeEncodeFixture(t *testing.T) {
	needFixture(t)
	ents, err := os.ReadDir(criuFixture)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, e := range ents {
		for _, pretty := range []bool{false, true} {
			in := filepath.Join(criuFixture, e.Name())
			args := []string{"image", "decode", "-i", in}
			if pretty {
				args = append(args, "--pretty")
			}
			code, js, stderr := runCLI(t, args...)
			if code != 0 || stderr != "" {
				t.Fatalf("decode %s: status %d, stderr %q", e.Name(), code, stderr)
			}
			jsonPath := filepath.Join(tmp, e.Name()+".json")
			if err := os.WriteFile(jsonPath, []byte(js), 0o600); err != nil {
				t.Fatal(err)
			}
			outPath := filepath.Join(tmp, e.Name())
			if code, _, stderr := runCLI(t, "image", "encode", "-i", jsonPath, "-o", outPath); code != 0 {
				t.Fatalf("encode %s: status %d, stderr %q", e.Name(), code, stderr)
			}
			orig, _ := os.ReadFile(in)
			back, _ := os.ReadFile(outPath)
			if !bytes.Equal(orig, back) {
				t.Errorf("%s (pretty=%v): encode(decode(x)) != x", e.Name(), pretty)
			}
			if st, _ := os.Stat(outPath); st.Mode().Perm() != 0o600 {
				t.Errorf("encoded image has mode %v", st.Mode().Perm())
			}
		}
	}
}

func TestImageDecodeOutput(t *testing.T) {
	needFixture(t)
	code, out, _ := runCLI(t, "image", "decode", "-i", filepath.Join(criuFixture, "pstree.img"))
	want := `{"magic":"PSTREE","entries":[{"pid":12833,"ppid":0,"pgid":12833,"sid":12833,"threads":[12833]}]}` + "\n"
	if code != 0 || out != want {
		t.Errorf("status %d, output\n%s\nwant\n%s", code, out, want)
	}
	code, out, _ = runCLI(t, "image", "decode", "--pretty", "-i", filepath.Join(criuFixture, "core-12833.img"))
	for _, s := range []string{`"mtype": "X86_64"`, `"comm": "counter"`, `"task_state": "Alive"`, `"clear_tid_addr": "0x`} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("core --pretty lacks %s", s)
		}
	}
}

func TestImageShow(t *testing.T) {
	needFixture(t)
	code, out, stderr := runCLI(t, "image", "show", criuFixture)
	if code != 0 {
		t.Fatalf("status %d: %s", code, stderr)
	}
	for _, s := range []string{
		"task 12833 (counter) ppid 0 pgid 12833 sid 12833 Alive\n",
		"  threads: 12833\n",
		"  pages: 286 present, 0 in parent, 0 lazy\n",
		"  vmas: 23\n",
		"rw-    2064K MAP_PRIVATE | MAP_ANON  VMA_AREA_REGULAR | VMA_ANON_PRIVATE\n",
		"      3 REG      /tmp/gockpt-testdata/counter.log\n",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("show output lacks %q:\n%s", s, out)
		}
	}
}

func TestImageLs(t *testing.T) {
	needFixture(t)
	code, out, _ := runCLI(t, "image", "ls", criuFixture)
	if code != 0 {
		t.Fatalf("status %d", code)
	}
	for _, s := range []string{"FILE               MAGIC      ENTRIES  SIZE\n",
		"core-12833.img     CORE       1        2260\n", "pages-1.img        PAGES      raw      1171456\n",
		"pagemap-12833.img  PAGEMAP    15       267\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("ls output lacks %q:\n%s", s, out)
		}
	}
}

func TestImageErrors(t *testing.T) {
	tmp := t.TempDir()
	junk := filepath.Join(tmp, "junk.img")
	os.WriteFile(junk, []byte("not an image"), 0o600)
	badJSON := filepath.Join(tmp, "bad.json")
	os.WriteFile(badJSON, []byte(`{"magic": "FS", "entries": [{"cwd_id": 1, "root": 2}]}`), 0o600)
	missing := filepath.Join(tmp, "missing")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"image", "decode"}, "Error: required flag(s) \"input\" not set\nRun 'gockpt image decode --help' for usage.\n"},
		{[]string{"image", "decode", "-i", junk}, "Error: " + junk + ": at byte 0: unknown image magic 0x20746f6e: not a CRIU image, or one newer than gockpt knows\n"},
		{[]string{"image", "decode", "-i", junk, "-o", filepath.Join(tmp, "junk.json")}, "Error: " + junk + ": at byte 0: unknown image magic 0x20746f6e: not a CRIU image, or one newer than gockpt knows\n"},
		{[]string{"image", "encode", "-i", badJSON}, "Error: required flag(s) \"output\" not set\nRun 'gockpt image encode --help' for usage.\n"},
		{[]string{"image", "encode", "-i", badJSON, "-o", filepath.Join(tmp, "fs.img")}, "Error: " + badJSON + ": entry 0: fs_entry has no field \"root\"\n"},
		{[]string{"image", "encode", "-i", badJSON, "-o", filepath.Join(missing, "fs.img")}, "Error: output file (-o): open " + filepath.Join(missing, "fs.img") + ": no such file or directory\n"},
		{[]string{"image", "show", missing}, "Error: images directory " + missing + " does not exist: check -D\n"},
		{[]string{"image", "ls"}, "Error: accepts 1 arg(s), received 0\nRun 'gockpt image ls --help' for usage.\n"},
		{[]string{"image", "shwo", tmp}, "Error: unknown command \"shwo\" for \"gockpt image\"\n\nDid you mean this?\n\tshow\n\nRun 'gockpt image --help' for usage.\n"},
		{[]string{"image", "x", tmp}, "Error: x takes an images directory and a view, got 1 argument(s): gockpt image x DIR ps|fds|mems|rss\nRun 'gockpt image x --help' for usage.\n"},
		{[]string{"image", "x", tmp, "top"}, "Error: unknown view \"top\": use one of ps, fds, mems, rss\nRun 'gockpt image x --help' for usage.\n"},
		{[]string{"image", "x", tmp, "ps"}, "Error: no pstree.img in " + tmp + ": not a gockpt or CRIU checkpoint\n"},
		{[]string{"image", "x", missing, "ps"}, "Error: images directory " + missing + " does not exist: check -D\n"},
	} {
		code, stdout, stderr := runCLI(t, append(c.args, "--no-default-config")...)
		if code != 1 || stderr != c.want || stdout != "" {
			t.Errorf("%v: status %d, stdout %q, stderr %q, want %q", c.args, code, stdout, stderr, c.want)
		}
	}
	// A failed decode or encode leaves no half-written output behind.
	for _, name := range []string{"fs.img", "junk.json"} {
		if _, err := os.Stat(filepath.Join(tmp, name)); err == nil {
			t.Errorf("failed command left its output file %s", name)
		}
	}
}

// TestImageDecodeOutput: -o is the output file, as crit has it, not the
// log file; crit's long spellings --in and --out work too; --log-file still
// names the log.
func TestImageDecodeOutputFile(t *testing.T) {
	needFixture(t)
	tmp := t.TempDir()
	pstree := filepath.Join(criuFixture, "pstree.img")
	want := `{"magic":"PSTREE","entries":[{"pid":12833,"ppid":0,"pgid":12833,"sid":12833,"threads":[12833]}]}` + "\n"
	for i, args := range [][]string{
		{"-i", pstree, "-o", filepath.Join(tmp, "0.json")},
		{"--in", pstree, "--out", filepath.Join(tmp, "1.json")},
		{"--input=" + pstree, "--output=" + filepath.Join(tmp, "2.json"), "-D", tmp, "--log-file", "decode.log"},
	} {
		code, stdout, stderr := runCLI(t, append([]string{"image", "decode", "--no-default-config"}, args...)...)
		if code != 0 || stdout != "" || stderr != "" {
			t.Fatalf("decode %v: status %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
		out := filepath.Join(tmp, fmt.Sprintf("%d.json", i))
		got, err := os.ReadFile(out)
		if err != nil || string(got) != want {
			t.Errorf("decode %v wrote %q (%v), want %q", args, got, err, want)
		}
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("decode %v: output mode %v (%v), want 0600", args, st.Mode().Perm(), err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(tmp, "decode.log")); err != nil || !strings.Contains(string(b), "gockpt image decode") {
		t.Errorf("--log-file decode.log: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 4 {
		t.Errorf("decode left %d files in %s, want the 3 outputs and decode.log", len(ents), tmp)
	}
	// Round trip through files only, as crit users do.
	img := filepath.Join(tmp, "pstree.img")
	if code, _, stderr := runCLI(t, "image", "encode", "--no-default-config", "-i", filepath.Join(tmp, "0.json"), "-o", img); code != 0 {
		t.Fatalf("encode: %d %s", code, stderr)
	}
	a, _ := os.ReadFile(pstree)
	b, _ := os.ReadFile(img)
	if !bytes.Equal(a, b) {
		t.Error("encode -o of decode -o differs from the original image")
	}
}

// treeProc starts testdata/tree.c (a root, a child with a child, a second
// child; a pipe at fds 5 and 9) and returns the root's PID and the tree's
// PIDs in tree order: root, first child, grandchild, second child.
func treeProc(t *testing.T) (dir string, pids []int) {
	t.Helper()
	bin := testproc.BuildC(t, "testdata/tree.c")
	dir = t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	kids := children(t, p.Pid)
	if len(kids) != 2 {
		t.Fatalf("tree root %d has children %v, want 2", p.Pid, kids)
	}
	grand := children(t, kids[0])
	if len(grand) != 1 {
		t.Fatalf("tree child %d has children %v, want 1", kids[0], grand)
	}
	return dir, []int{p.Pid, kids[0], grand[0], kids[1]}
}

// children lists pid's children in the order the kernel keeps them.
func children(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// TestImageExploreDump: image x reads what gockpt dump wrote, and shows
// what /proc showed of the live tree.
func TestImageExploreDump(t *testing.T) {
	dir, pids := treeProc(t)
	root := pids[0]
	// What /proc says, read while the tree is idle, before the dump.
	wantPS := "    PID   PGID    SID   COMM\n"
	var wantFDs strings.Builder
	for i, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			t.Fatal(err)
		}
		depth := []int{0, 1, 2, 1}[i]
		wantPS += fmt.Sprintf("%7d%7d%7d   %s%s\n", pid, root, root, strings.Repeat("    ", depth), strings.TrimSpace(string(comm)))
		fmt.Fprintf(&wantFDs, "%d\n", pid)
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		fds := make([]int, 0, len(ents))
		for _, e := range ents {
			n, _ := strconv.Atoi(e.Name())
			fds = append(fds, n)
		}
		slices.Sort(fds)
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd))
			if err != nil {
				t.Fatal(err)
			}
			// crit writes pipe:[N] as pipe[N].
			link = strings.Replace(link, "pipe:[", "pipe[", 1)
			fmt.Fprintf(&wantFDs, "\t%7d: %s\n", fd, link)
		}
		fmt.Fprintf(&wantFDs, "\t%7s: %s\n\t%7s: %s\n", "cwd", dir, "root", "/")
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", root))
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", root))
	if err != nil {
		t.Fatal(err)
	}

	imgs := filepath.Join(t.TempDir(), "img")
	if code, _, stderr := runCLI(t, "dump", "--no-default-config", "-t", fmt.Sprint(root), "-D", imgs, "--leave-running"); code != 0 {
		t.Fatalf("dump: status %d: %s", code, stderr)
	}
	x := func(view string) string {
		t.Helper()
		code, out, stderr := runCLI(t, "image", "x", "--no-default-config", imgs, view)
		if code != 0 || stderr != "" {
			t.Fatalf("x %s: status %d, stderr %q", view, code, stderr)
		}
		return out
	}
	if got := x("ps"); got != wantPS {
		t.Errorf("x ps:\n%s\nwant:\n%s", got, wantPS)
	}
	if got := x("fds"); got != wantFDs.String() {
		t.Errorf("x fds:\n%s\nwant:\n%s", got, wantFDs.String())
	}

	// mems: the root's first block is its executable, then one line per
	// line of /proc/PID/maps, same range and protection, file and offset.
	mems := strings.Split(x("mems"), "\n")
	if mems[0] != fmt.Sprint(root) || mems[1] != fmt.Sprintf("\t%-36s    %s", "exe", exe) {
		t.Fatalf("x mems starts with %q, want the root %d and its exe %s", mems[:2], root, exe)
	}
	mapLines := mergeVvar(strings.Split(strings.TrimSpace(string(maps)), "\n"))
	for i, m := range mapLines {
		f := strings.Fields(m)
		want := fmt.Sprintf("\t%-36s%s", f[0], f[1][:3])
		if len(f) == 6 && strings.HasPrefix(f[5], "/") {
			want += " " + f[5]
			if off, _ := strconv.ParseUint(f[2], 16, 64); off != 0 {
				want += fmt.Sprintf(" + %#x", off)
			}
		}
		if got := mems[2+i]; got != want && !strings.HasPrefix(got, want+" [") {
			t.Errorf("x mems line %d is %q, want %q (maps: %s)", 2+i, got, want, m)
		}
	}
	if next := mems[2+len(mapLines)]; next != fmt.Sprint(pids[1]) {
		t.Errorf("x mems: after the root's %d mappings comes %q, want the next task %d", len(mapLines), next, pids[1])
	}

	// rss: one block per task, each pagemap line inside the task's block;
	// the root's data pages lie in a mapping of its executable.
	rss := x("rss")
	if !strings.HasPrefix(rss, fmt.Sprintf("%d\n\t", root)) || !strings.Contains(rss, "        "+exe+"\n") {
		t.Errorf("x rss:\n%s\nwant the root %d first and a page of %s", rss, root, exe)
	}
	for _, pid := range pids {
		if !strings.Contains(rss, fmt.Sprintf("\n%d\n\t", pid)) && !strings.HasPrefix(rss, fmt.Sprintf("%d\n\t", pid)) {
			t.Errorf("x rss has no pages for task %d:\n%s", pid, rss)
		}
	}
}

// mergeVvar joins [vvar] and the [vvar_vclock] after it into one line of
// maps: dump keeps them as one area, as CRIU does, since they move as one.
func mergeVvar(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		if n := len(out); n > 0 && len(f) == 6 && f[5] == "[vvar_vclock]" && strings.HasSuffix(out[n-1], " [vvar]") {
			prev := strings.Fields(out[n-1])
			start, _, _ := strings.Cut(prev[0], "-")
			_, end, _ := strings.Cut(f[0], "-")
			prev[0] = start + "-" + end
			out[n-1] = strings.Join(prev, " ")
			continue
		}
		out = append(out, l)
	}
	return out
}
