package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/testproc"
)

// TestPidfdOfReapedProcess: a pidfd of a process reaped before the dump
// comes back referring to a reaped process that ended the same way
// (PIDFD_GET_INFO), and, from an image without the exit status (CRIU 4.2
// writes none), to one killed by SIGKILL, as CRIU 4.2 restores it.
func TestPidfdOfReapedProcess(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/deadpidfd.c")
	for _, c := range []struct {
		name      string
		stripExit bool
		want      int32
	}{
		{"gockpt image", false, 7 << 8},
		{"without exit status", true, int32(unix.SIGKILL)},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := testproc.Start(t, bin, dir)
			testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
			imgs := filepath.Join(t.TempDir(), "img")
			var out, errOut bytes.Buffer
			if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs}, &out, &errOut); code != 0 {
				t.Fatalf("dump exit %d: %s", code, errOut.String())
			}
			p.Cmd.Wait()
			for i := 0; i < 500 && testproc.Alive(p.Pid); i++ {
				time.Sleep(10 * time.Millisecond)
			}
			entry := pidfdEntry(t, imgs)
			if got := fmt.Sprint(entry["nspid"], " ", entry["flags"], " ", entry["attr"]); got != "-1 0 map[exit_code:1792]" {
				t.Fatalf("pidfd entry nspid, flags, attr: %s, want -1 0 map[exit_code:1792]", got)
			}
			if c.stripExit {
				stripPidfdAttr(t, imgs)
			}
			if code := run([]string{"restore", "-D", imgs, "-d"}, &out, &errOut); code != 0 {
				t.Fatalf("restore exit %d: %s", code, errOut.String())
			}
			t.Cleanup(func() {
				unix.Kill(p.Pid, unix.SIGKILL)
				var ws unix.WaitStatus
				unix.Wait4(p.Pid, &ws, 0, nil)
			})
			fdinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/10", p.Pid))
			if err != nil || !strings.Contains(string(fdinfo), "\nPid:\t-1\n") {
				t.Fatalf("restored fd 10: fdinfo %q, %v; want Pid: -1", fdinfo, err)
			}
			pfd, err := unix.PidfdOpen(p.Pid, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(pfd)
			fd, err := unix.PidfdGetfd(pfd, 10, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_EXIT}
			if err := unix.IoctlPidfdInfo(fd, &info); err != nil {
				t.Skipf("PIDFD_GET_INFO: %v (Linux 6.15+)", err)
			}
			if info.Mask&unix.PIDFD_INFO_EXIT == 0 || info.Exit_code != c.want {
				t.Fatalf("restored pidfd: exit status %#x (mask %#x), want %#x", info.Exit_code, info.Mask, c.want)
			}
		})
	}
}

// pidfdEntry is the one pidfd entry of files.img, as image decode prints it.
func pidfdEntry(t *testing.T, imgs string) map[string]any {
	t.Helper()
	f := decodeImage(t, filepath.Join(imgs, "files.img"))
	for _, e := range f["entries"].([]any) {
		if m := e.(map[string]any); m["type"] == "PIDFD" {
			return m["pidfd"].(map[string]any)
		}
	}
	t.Fatal("no PIDFD entry in files.img")
	return nil
}

func decodeImage(t *testing.T, img string) map[string]any {
	t.Helper()
	js := filepath.Join(t.TempDir(), "files.json")
	var out, errOut bytes.Buffer
	if code := run([]string{"image", "decode", "-i", img, "-o", js}, &out, &errOut); code != 0 {
		t.Fatalf("image decode: %s", errOut.String())
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// stripPidfdAttr rewrites files.img without the pidfds' exit status.
func stripPidfdAttr(t *testing.T, imgs string) {
	t.Helper()
	img := filepath.Join(imgs, "files.img")
	f := decodeImage(t, img)
	for _, e := range f["entries"].([]any) {
		if m := e.(map[string]any); m["type"] == "PIDFD" {
			delete(m["pidfd"].(map[string]any), "attr")
		}
	}
	b, _ := json.Marshal(f)
	js := filepath.Join(t.TempDir(), "stripped.json")
	os.WriteFile(js, b, 0o600)
	var out, errOut bytes.Buffer
	if code := run([]string{"image", "encode", "-i", js, "-o", img}, &out, &errOut); code != 0 {
		t.Fatalf("image encode: %s", errOut.String())
	}
}
