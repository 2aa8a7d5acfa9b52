package images

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestIsImageName(t *testing.T) {
	for _, n := range []string{"inventory.img", "core-1.img", "core-123456.img", "pages-3.img", "ghost-file-1a.img",
		"tcp-stream-ff.img", "stats-dump", "gockpt-track.json", "gockpt-hashes-77", "parent", "pagemap-shmem-9.img",
		"tmpfs-dev-3.tar.gz.img", "fdinfo-2.img"} {
		if !IsImageName(n) {
			t.Errorf("%s is an image name", n)
		}
	}
	for _, n := range []string{"dump.log", "core-.img", "core-1x.img", "core-1.img.bak", "ghost-file-1G.img", "notes.txt",
		"restore.log", "core-1", "pages-a.img", "inventory.img~", "xcore-1.img"} {
		if IsImageName(n) {
			t.Errorf("%s is not an image name", n)
		}
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"core-1.img", "core-2.img", "pages-2.img", "dump.log", "notes.txt", "inventory.img", "gockpt-track.json"} {
		os.WriteFile(filepath.Join(dir, n), []byte("old"), 0o600)
	}
	os.Symlink("../prev", filepath.Join(dir, "parent"))
	os.Mkdir(filepath.Join(dir, "core-9.img"), 0o700) // a directory is never removed
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.BeginWrite(); err != nil {
		t.Fatal(err)
	}
	if d.Exists(InventoryFile) {
		t.Fatal("BeginWrite left inventory.img")
	}
	f, err := d.CreateFile("core-1.img")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	removed, err := d.RemoveStale()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"core-2.img", "gockpt-track.json", "pages-2.img", "parent"}
	if !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, n := range []string{"core-1.img", "dump.log", "notes.txt", "core-9.img"} {
		if !d.Exists(n) {
			t.Errorf("%s was removed", n)
		}
	}
}
