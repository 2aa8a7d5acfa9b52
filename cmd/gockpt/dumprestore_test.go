package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// TestDumpRestoreCLI drives the commands as a user does: dump prints its
// summary and writes its log; restore without -d waits for the restored
// root and exits with its exit status; the log pointer is printed on errors.
func TestDumpRestoreCLI(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/exiter.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	imgs := filepath.Join(t.TempDir(), "img")
	tree := append(testproc.Descendants(p.Pid), p.Pid)

	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs, "--display-stats"}, &out, &errOut); code != 0 {
		t.Fatalf("dump exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "Dumped 1 tasks, 1 threads, ") || !strings.Contains(out.String(), "Memory pages written: ") {
		t.Fatalf("dump printed %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(imgs, "dump.log")); err != nil {
		t.Fatalf("no dump.log in the images directory: %v", err)
	}
	p.Cmd.Wait()
	for _, pid := range tree {
		for i := 0; i < 500 && testproc.Alive(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}

	done := make(chan int)
	go func() {
		var o, e bytes.Buffer
		done <- run([]string{"restore", "-D", imgs}, &o, &e)
	}()
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	// restore waits for the restored root: it must not return before the
	// root exits.
	select {
	case code := <-done:
		t.Fatalf("restore returned %d before the restored task exited", code)
	case <-time.After(300 * time.Millisecond):
	}
	if !testproc.Alive(p.Pid) {
		t.Fatalf("task %d not running after restore", p.Pid)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	select {
	case code := <-done:
		if code != 7 {
			t.Fatalf("restore exit status %d, want the restored task's 7", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restore did not return after the restored task exited")
	}

	// A failing restore prints the error once with a pointer to its log.
	out.Reset()
	errOut.Reset()
	missing := filepath.Join(t.TempDir(), "nothing")
	if code := run([]string{"restore", "-D", missing}, &out, &errOut); code != 1 {
		t.Fatalf("restore of a missing directory exit %d", code)
	}
	want := fmt.Sprintf("Error: images directory %s does not exist: check -D\n", missing)
	if errOut.String() != want {
		t.Fatalf("stderr %q, want %q", errOut.String(), want)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a failed restore created the images directory")
	}
	// With a log, the error says where it is.
	errOut.Reset()
	os.Mkdir(missing, 0o700)
	run([]string{"restore", "-D", missing}, &out, &errOut)
	if !strings.HasSuffix(errOut.String(), fmt.Sprintf("(see %s/restore.log)\n", missing)) || strings.Count(errOut.String(), "Error:") != 1 {
		t.Fatalf("stderr %q", errOut.String())
	}
}
