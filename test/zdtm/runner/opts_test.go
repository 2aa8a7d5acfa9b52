package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseHeaderOpts(t *testing.T) {
	tt := &Test{Source: "x.c"}
	if err := ParseHeader(strings.NewReader("// zdtm: desc: d\n// zdtm: opts: --file-locks\n"), tt); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tt.Opts, []string{"--file-locks"}) {
		t.Errorf("opts %v", tt.Opts)
	}
	if err := ParseHeader(strings.NewReader("// zdtm: desc: d\n// zdtm: opts: --leave-running\n"), &Test{Source: "x.c"}); err == nil {
		t.Error("accepted an option not both tools take")
	}
}

// TestOptsReachBothTools: a test's "opts:" go to every dump and restore,
// gockpt's and CRIU's, and not to pre-dumps.
func TestOptsReachBothTools(t *testing.T) {
	dir := t.TempDir()
	argsLog := filepath.Join(dir, "args")
	// A stand-in for gockpt and CRIU: it writes its arguments down and fails.
	fake := filepath.Join(dir, "tool")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" >> "+argsLog+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "out"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Run{cfg: &Config{Gockpt: fake, CRIU: fake, Timeout: time.Minute}, test: &Test{Name: "t", Opts: []string{"--file-locks"}},
		dir: dir, out: filepath.Join(dir, "out"), root: os.Getpid(), deadline: time.Now().Add(time.Minute)}
	if r.PreDump(preDumpOpts{}) == nil || r.Checkpoint(checkpointOpts{}) == nil || r.RestoreAndVerify(restoreOpts{}) == nil ||
		r.CRIUCheckpoint() == nil || r.CRIURestoreAndVerify() == nil {
		t.Fatal("a failing tool did not fail the step")
	}
	b, err := os.ReadFile(argsLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d runs, want 5:\n%s", len(lines), b)
	}
	for i, l := range lines {
		has := strings.Contains(" "+l+" ", " --file-locks ")
		if pre := strings.HasPrefix(l, "pre-dump "); has == pre {
			t.Errorf("run %d: %s: --file-locks %v", i, l, has)
		}
	}
}
