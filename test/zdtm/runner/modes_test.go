package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestDefaultRunModes(t *testing.T) {
	want := []string{"restore", "snapshot", "twice", "predump", "page-server", "predump-page-server", "lazy", "lazy-faults", "predump-lazy", "predump-hashes", "make-lazy", "criu-restore", "criu-dump", "criu-predump", "criu-page-server", "criu-dump-page-server"}
	if got := defaultRunModes(); !reflect.DeepEqual(got, want) {
		t.Errorf("defaultRunModes() = %v, want %v", got, want)
	}
	for _, m := range defaultRunModes() {
		if findMode(m) == nil {
			t.Errorf("default mode %q does not exist", m)
		}
	}
	// An opt-in mode is no test's default.
	for _, m := range defaultModes {
		if findMode(m).OptIn {
			t.Errorf("opt-in mode %q in defaultModes", m)
		}
	}
	// A mode comes with an existing one, and no further.
	for _, m := range modes {
		if m.With == "" {
			continue
		}
		if w := findMode(m.With); w == nil || w.With != "" {
			t.Errorf("mode %s comes with %q", m.Name, m.With)
		}
	}
}

func TestOptInModeHeaders(t *testing.T) {
	tests, err := Discover("..")
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	for _, tt := range tests {
		if tt.Supports("predump-hashes") {
			hashes = append(hashes, tt.Name)
		}
	}
	want := []string{"mem_anon", "mem_heap", "mem_mremap", "mem_predump_pattern", "mem_sparse"}
	if !reflect.DeepEqual(hashes, want) {
		t.Errorf("tests in predump-hashes: %v, want %v", hashes, want)
	}
	var makeLazy []string
	for _, tt := range tests {
		if tt.Supports("make-lazy") {
			makeLazy = append(makeLazy, tt.Name)
		}
	}
	want = []string{"mem_anon", "mem_heap", "mem_lazy_fork", "mem_lazy_madvise", "mem_lazy_mprotect", "mem_lazy_mremap", "mem_lazy_race", "mem_mremap", "mem_predump_pattern", "mem_sparse"}
	if !reflect.DeepEqual(makeLazy, want) {
		t.Errorf("tests in make-lazy: %v, want %v", makeLazy, want)
	}
	// CRIU restores (and dumps) every test but those whose state it
	// cannot handle. sk_tcp_established: CRIU's network lock needs
	// iptables, which this machine lacks, and it does not lift gockpt's.
	// The page-server and lazy modes run wherever the mode they come
	// with runs; but mem_cow leaves out lazy and lazy-faults (post-copy
	// copies each task's pages: no copy-on-write sharing).
	excluded := map[string]map[string]bool{"mem_cow": {"lazy": true, "lazy-faults": true}}
	for _, tt := range tests {
		for _, m := range modes {
			if excluded[tt.Name][m.Name] {
				if tt.Supports(m.Name) || !tt.Supports(m.With) {
					t.Errorf("%s: %s %v, %s %v", tt.Name, m.Name, tt.Supports(m.Name), m.With, tt.Supports(m.With))
				}
				continue
			}
			if m.With != "" && tt.Supports(m.Name) != tt.Supports(m.With) {
				t.Errorf("%s: %s %v, %s %v", tt.Name, m.Name, tt.Supports(m.Name), m.With, tt.Supports(m.With))
			}
		}
	}
	for mode, cannot := range map[string]map[string]bool{
		"criu-restore": {"sig_trap": true, "ns_uts": true, "task_personality": true, "file_sigio": true, "file_deleted_dirfd": true, "file_opath": true, "file_pidfd_dead": true, "file_pidfd_thread": true, "file_eventfd_semaphore": true, "sk_netlink": true, "sk_inet_opts": true, "mem_shared_anon": true, "sk_unix_listen": true, "sk_unix_dgram": true, "sk_unix_peek_off": true, "tty_pty_pair": true, "file_inotify_flags": true, "sig_restart_poll": true, "sk_tcp_established": true},
		"criu-predump": {"sig_trap": true, "ns_uts": true, "task_personality": true, "file_sigio": true, "file_deleted_dirfd": true, "file_opath": true, "mem_hugetlb": true, "file_pidfd_dead": true, "file_pidfd_thread": true, "file_eventfd_semaphore": true, "sk_netlink": true, "sk_inet_opts": true, "mem_shared_anon": true, "sk_unix_listen": true, "sk_unix_dgram": true, "sk_unix_peek_off": true, "tty_pty_pair": true, "file_inotify_flags": true, "sig_restart_poll": true, "sk_tcp_established": true},
		"criu-dump":    {"sig_trap": true, "ns_uts": true, "task_personality": true, "creds_nobody": true, "file_unlinked_hardlink": true, "file_opath": true, "mem_hugetlb": true, "task_stopped_tty": true, "file_pidfd_dead": true, "file_pidfd_thread": true, "file_eventfd_semaphore": true, "sk_netlink": true, "sk_inet_opts": true, "mem_shared_anon": true, "sk_unix_dgram": true, "sk_unix_peek_off": true, "file_inotify_flags": true, "sig_restart_poll": true, "tty_pty_pair": true, "sk_tcp_established": true},
	} {
		for _, tt := range tests {
			if tt.Supports(mode) == cannot[tt.Name] {
				t.Errorf("%s in %s: %v, want %v", tt.Name, mode, tt.Supports(mode), !cannot[tt.Name])
			}
		}
	}
}

func TestImagesChain(t *testing.T) {
	dir := t.TempDir()
	r := &Run{dir: dir}
	if o := r.prevImagesOpts(); o != nil {
		t.Errorf("first iteration chained: %v", o)
	}
	for i, want := range []string{"img-1", "img-2", "img-3"} {
		if i > 0 {
			if o := r.prevImagesOpts(); !reflect.DeepEqual(o, []string{"--prev-images-dir", "../img-" + string(rune('0'+i))}) {
				t.Errorf("iteration %d: %v", i+1, o)
			}
		}
		if img := r.newImagesDir(); img != filepath.Join(dir, want) {
			t.Errorf("images dir %s, want %s", img, want)
		}
	}
	if r.images[len(r.images)-1] != filepath.Join(dir, "img-3") {
		t.Errorf("latest images %s", r.images[len(r.images)-1])
	}
}

func TestCheckParentLink(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"img-1", "img-2", "img-3"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img2, img3 := filepath.Join(dir, "img-2"), filepath.Join(dir, "img-3")
	prev := []string{"--track-mem", "--prev-images-dir", "../img-1"}
	if err := checkParentLink(img2, []string{"--track-mem"}); err != nil {
		t.Errorf("no --prev-images-dir: %v", err)
	}
	if err := checkParentLink(img2, prev); err == nil {
		t.Error("missing parent link accepted")
	}
	os.Symlink("../img-1", filepath.Join(img2, "parent"))
	if err := checkParentLink(img2, prev); err != nil {
		t.Error(err)
	}
	os.Symlink("../img-1", filepath.Join(img3, "parent"))
	if err := checkParentLink(img3, []string{"--prev-images-dir", "../img-2"}); err == nil {
		t.Error("parent link to the wrong directory accepted")
	}
}

func TestMemStats(t *testing.T) {
	out := `Pre-dumped 1 tasks: 2 pages written, 28 left in the parent images, frozen for 16.34ms
Displaying dump stats:
Freezing time: 408 us
Memory pages scanned: 262722 (0x40242)
Memory pages skipped from parent: 28 (0x1c)
Memory pages written: 2 (0x2)
Lazy memory pages: 0 (0x0)
`
	want := map[string]int{"scanned": 262722, "skipped from parent": 28, "written": 2}
	if got := memStats(out); !reflect.DeepEqual(got, want) {
		t.Errorf("memStats = %v, want %v", got, want)
	}
	if got := memStats("Dumped 1 tasks\n"); got != nil {
		t.Errorf("no stats: %v", got)
	}
}
