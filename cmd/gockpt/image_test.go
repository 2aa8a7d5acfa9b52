package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
			if code, _, stderr := runCLI(t, "image", "encode", "-i", jsonPath, "--output", outPath); code != 0 {
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
		{[]string{"image", "decode"}, "Error: required flag(s) \"input\" not set\n"},
		{[]string{"image", "decode", "-i", junk}, "Error: " + junk + ": at byte 0: unknown image magic 0x20746f6e: not a CRIU image, or one newer than gockpt knows\n"},
		{[]string{"image", "encode", "-i", badJSON, "--output", filepath.Join(tmp, "fs.img")}, "Error: " + badJSON + ": entry 0: fs_entry has no field \"root\"\n"},
		{[]string{"image", "show", missing}, "Error: images directory " + missing + " does not exist: check -D\n"},
		{[]string{"image", "ls"}, "Error: accepts 1 arg(s), received 0\n"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != 1 || stderr != c.want {
			t.Errorf("%v: status %d, stderr %q, want %q", c.args, code, stderr, c.want)
		}
	}
	// A failed encode leaves no half-written image behind.
	if _, err := os.Stat(filepath.Join(tmp, "fs.img")); err == nil {
		t.Error("failed encode left its output file")
	}
}
