package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindCRIUMissing(t *testing.T) {
	top := t.TempDir()
	zdtm := filepath.Join(top, "repo", "test", "zdtm")
	t.Setenv(criuEnv, "")
	path, why := findCRIU(zdtm)
	want := filepath.Join(top, "shared", "anchors", "criu-4.2", "criu")
	if path != want {
		t.Errorf("default CRIU %s, want %s", path, want)
	}
	if w := "no CRIU at " + want + " (the default place): set GOCKPT_TEST_CRIU to a CRIU 4.2 binary to run it"; why != w {
		t.Errorf("missing CRIU: %q, want %q", why, w)
	}

	bad := filepath.Join(top, "criu")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho 'error while loading shared libraries: libnet.so.1' >&2\nexit 127\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(criuEnv, bad)
	path, why = findCRIU(zdtm)
	if path != bad {
		t.Errorf("CRIU from %s: %s", criuEnv, path)
	}
	if w := "CRIU at " + bad + " does not run (exit status 127: error while loading shared libraries: libnet.so.1): install its libraries (install-libs.sh beside it) or set GOCKPT_TEST_CRIU"; why != w {
		t.Errorf("CRIU that does not run: %q, want %q", why, w)
	}

	t.Setenv(criuEnv, filepath.Join(top, "nowhere"))
	if _, why = findCRIU(zdtm); why != "no CRIU at "+filepath.Join(top, "nowhere")+" ($GOCKPT_TEST_CRIU): set GOCKPT_TEST_CRIU to a CRIU 4.2 binary to run it" {
		t.Errorf("CRIU named but absent: %q", why)
	}
}

func TestFindCRIURuns(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "criu")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'Version: 4.2'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(criuEnv, fake)
	path, why := findCRIU("test/zdtm")
	if path != fake || why != "" {
		t.Errorf("findCRIU = %q, %q; want %q, \"\"", path, why, fake)
	}
}

func TestCRIUErrors(t *testing.T) {
	log := filepath.Join(t.TempDir(), "criu-restore.log")
	var b strings.Builder
	b.WriteString("(00.000000) CRIU run id = x\n")
	for i := 0; i < 7; i++ {
		b.WriteString("(00.1) Error (criu/x.c:1): error " + string(rune('a'+i)) + "\n")
	}
	b.WriteString("(00.2) Restoring FAILED? no, the last line\n")
	if err := os.WriteFile(log, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got := criuErrors(log)
	want := log + ":\n(00.1) Error (criu/x.c:1): error c\n(00.1) Error (criu/x.c:1): error d\n(00.1) Error (criu/x.c:1): error e\n(00.1) Error (criu/x.c:1): error f\n(00.1) Error (criu/x.c:1): error g"
	if got != want {
		t.Errorf("criuErrors:\n%s\nwant:\n%s", got, want)
	}
	if got := criuErrors(log + ".none"); !strings.HasPrefix(got, "(no CRIU log: open "+log+".none: no such file") {
		t.Errorf("no log: %q", got)
	}
}
