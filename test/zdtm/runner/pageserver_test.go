package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// receivedImages writes what a page server leaves: pagemap-100.img with 2
// present pages in pages-65537.img, 1 page in the parent, and a memfd's
// pagemap-shmem-7.img with 1 page in pages-65538.img.
func receivedImages(t *testing.T) string {
	t.Helper()
	img := t.TempDir()
	d, err := images.OpenDir(img)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pagemap.Create(d, 100, firstServerPagesID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(pagemap.Entry{Vaddr: 0x1000, NrPages: 2, Flags: pagemap.FlagPresent}, make([]byte, 2*pagemap.PageSize)); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(pagemap.Entry{Vaddr: 0x3000, NrPages: 1, Flags: pagemap.FlagParent}, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = pagemap.CreateShmem(d, 7, firstServerPagesID+1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(pagemap.Entry{Vaddr: 0, NrPages: 1, Flags: pagemap.FlagPresent}, make([]byte, pagemap.PageSize)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCheckServerPages(t *testing.T) {
	img := receivedImages(t)
	tasks, all, err := checkServerPages(img, 100)
	if err != nil || tasks != 2 || all != 3 {
		t.Errorf("received images: %d task pages, %d in all, %v; want 2, 3", tasks, all, err)
	}
	for _, c := range []struct {
		name   string
		damage func(img string)
		want   string
	}{
		{"root not received", func(string) {}, "no pagemap-200.img"},
		{"pages of the dump's own", func(img string) {
			os.WriteFile(filepath.Join(img, "pages-1.img"), nil, 0o600)
		}, "pages-1.img: written by the dump"},
		{"pages cut short", func(img string) {
			os.Truncate(filepath.Join(img, "pages-65537.img"), pagemap.PageSize)
		}, "pagemap-100.img lists 2 present pages, pages-65537.img holds 4096 bytes"},
		{"pages missing", func(img string) {
			os.Remove(filepath.Join(img, "pages-65538.img"))
		}, "pagemap-shmem-7.img names pages-65538.img"},
		{"removed by the dump", func(img string) {
			os.Remove(filepath.Join(img, "pagemap-100.img"))
			os.WriteFile(filepath.Join(img, "dump.log"), []byte("(0.023594) Info: removed 2 image files of an earlier dump in /x: pagemap-100.img pages-65537.img\n"), 0o600)
		}, "dump.log: (0.023594) Info: removed 2 image files of an earlier dump"},
	} {
		img := receivedImages(t)
		c.damage(img)
		root := 100
		if c.name == "root not received" {
			root = 200
		}
		if _, _, err := checkServerPages(img, root); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// fakePageServer writes a script that stands for gockpt: it says it
// listens, then runs body.
func fakePageServer(t *testing.T, body string) *Run {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "gockpt")
	script := "#!/bin/sh\necho 'page server listening on 127.0.0.1:4242'\n" + body + "\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &Run{cfg: &Config{Gockpt: bin, Timeout: time.Second}, mode: findMode("page-server"), dir: dir, deadline: time.Now().Add(5 * time.Second)}
}

func TestGockptPageServerEnds(t *testing.T) {
	r := fakePageServer(t, "exit 0")
	ps, err := r.startPageServer(filepath.Join(r.dir, "img-1"), "")
	if err != nil {
		t.Fatal(err)
	}
	if ps.port != 4242 || strings.Join(ps.opts(), " ") != "--page-server --address 127.0.0.1 --port 4242" {
		t.Errorf("port %d, options %v", ps.port, ps.opts())
	}
	if err := ps.wait(r.deadline, r.cfg.Timeout); err != nil {
		t.Error(err)
	}

	r = fakePageServer(t, "mkdir -p img-1; echo '(0.1) Error: session failed' > img-1/page-server.log; exit 3")
	if ps, err = r.startPageServer(filepath.Join(r.dir, "img-1"), ""); err != nil {
		t.Fatal(err)
	}
	if err := ps.wait(r.deadline, r.cfg.Timeout); err == nil || !strings.Contains(err.Error(), "gockpt page-server ended after the dump: exit 3") || !strings.Contains(err.Error(), "Error: session failed") {
		t.Errorf("page server that failed: %v", err)
	}
}

func TestGockptPageServerKilled(t *testing.T) {
	r := fakePageServer(t, "exec sleep 100")
	ps, err := r.startPageServer(filepath.Join(r.dir, "img-1"), "../img-0")
	if err != nil {
		t.Fatal(err)
	}
	pid := ps.pid
	if err := ps.wait(time.Now().Add(100*time.Millisecond), r.cfg.Timeout); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("page server that hangs: %v", err)
	}
	if exists(pid) {
		t.Errorf("page server %d left running", pid)
	}
	if err := ps.kill(); err != nil {
		t.Errorf("kill after it ended: %v", err)
	}

	// One that never says it listens.
	r = fakePageServer(t, "")
	os.WriteFile(r.cfg.Gockpt, []byte("#!/bin/sh\necho starting\nexit 1\n"), 0o755)
	if _, err := r.startPageServer(filepath.Join(r.dir, "img-1"), ""); err == nil || !strings.Contains(err.Error(), "gockpt page-server ended (exit 1) before it listened: starting") {
		t.Errorf("page server that did not listen: %v", err)
	}
}

func TestCRIUPageServerStatusFd(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "criu")
	// Ready on its status fd, then gone: the port given is passed on.
	os.WriteFile(bin, []byte("#!/bin/sh\nprintf '\\000' >&3\nexec 3>&-\nexit 0\n"), 0o755)
	r := &Run{cfg: &Config{CRIU: bin, Timeout: time.Second}, mode: findMode("criu-page-server"), dir: dir, deadline: time.Now().Add(5 * time.Second)}
	ps, err := r.startPageServer(filepath.Join(dir, "img-1"), "")
	if err != nil {
		t.Fatal(err)
	}
	if ps.port == 0 || ps.tool != criuPageServer {
		t.Errorf("port %d, tool %s", ps.port, ps.tool)
	}
	if err := ps.wait(r.deadline, r.cfg.Timeout); err != nil {
		t.Error(err)
	}

	// A port taken meanwhile is tried again with another; five times.
	os.WriteFile(bin, []byte("#!/bin/sh\necho '(00.000) Error (criu/util.c:1): Cannot bind page server: Address already in use' > img-2/page-server.log\nexit 1\n"), 0o755)
	_, err = r.startPageServer(filepath.Join(dir, "img-2"), "")
	if err == nil || !strings.Contains(err.Error(), "criu page-server ended (exit 1) before it listened") || !strings.Contains(err.Error(), "Address already in use") {
		t.Errorf("port always taken: %v", err)
	}
	if logs, _ := filepath.Glob(filepath.Join(dir, "img-2", "page-server.log.port-*")); len(logs) != 5 {
		t.Errorf("logs of the tries: %v", logs)
	}
}
