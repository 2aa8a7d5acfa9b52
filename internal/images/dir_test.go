package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

func TestCreateDirModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "dump")
	d, err := CreateDir(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("new images directory has mode %v, want 0700", st.Mode().Perm())
	}
	// An existing file is truncated and made private, not refused.
	if err := os.WriteFile(d.Join(PstreeFile), []byte("old contents, longer than the new"), 0o644); err != nil {
		t.Fatal(err)
	}
	pe := &pb.PstreeEntry{Pid: proto.Uint32(5), Ppid: proto.Uint32(1), Pgid: proto.Uint32(5), Sid: proto.Uint32(5)}
	if err := d.WriteOne(PstreeFile, KindPstree, pe); err != nil {
		t.Fatal(err)
	}
	st, _ = os.Stat(d.Join(PstreeFile))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("image file has mode %v, want 0600", st.Mode().Perm())
	}
	var got pb.PstreeEntry
	if err := d.ReadOne(PstreeFile, &got); err != nil || !proto.Equal(&got, pe) {
		t.Errorf("read back %v, %v", &got, err)
	}
	if !d.Exists(PstreeFile) || d.Exists("core-5.img") {
		t.Error("Exists is wrong")
	}
}

func TestOpenDirErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := OpenDir(missing); err == nil || err.Error() != "images directory "+missing+" does not exist: check -D" {
		t.Errorf("missing: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := OpenDir(f); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("file: %v", err)
	}
}

func TestParentLink(t *testing.T) {
	root := t.TempDir()
	prev, _ := CreateDir(filepath.Join(root, "1"))
	cur, _ := CreateDir(filepath.Join(root, "2"))
	if p, err := cur.Parent(); p != nil || err != nil {
		t.Errorf("no link: %v %v", p, err)
	}
	if err := cur.LinkParent("../1"); err != nil {
		t.Fatal(err)
	}
	if err := cur.LinkParent("../1"); err != nil { // replacing works
		t.Fatal(err)
	}
	p, err := cur.Parent()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := prev.RealPath()
	if got, _ := p.RealPath(); got != want {
		t.Errorf("parent is %s, want %s", got, want)
	}
	os.RemoveAll(prev.Path())
	if _, err := cur.Parent(); err == nil || !strings.Contains(err.Error(), "parent link") {
		t.Errorf("dangling link: %v", err)
	}
}
