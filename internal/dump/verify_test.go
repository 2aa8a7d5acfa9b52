package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// TestVerifyBeforeKill: a dump whose images lack what restore needs for a
// deleted object does not finish: the default kill does not happen, the
// tree runs on untraced, no inventory.img is written, and the message names
// the task, the fd and the object.
func TestVerifyBeforeKill(t *testing.T) {
	// remap returns the deleted object's file id and what it is remapped to.
	remap := func(t *testing.T, img string) (uint32, uint32) {
		d, err := images.OpenDir(img)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := d.Open("remap-fpath.img")
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		var r pb.RemapFilePathEntry
		if _, err := rd.ReadEntry(&r); err != nil {
			t.Fatal(err)
		}
		return r.GetOrigId(), r.GetRemapId()
	}
	const tail = "; the tree was left running and the dump not completed (no inventory.img): dump again"
	cases := []struct {
		name, kind string
		args       []string
		damage     func(t *testing.T, h *holder, img string) string // returns the message
	}{
		{"ghost image removed", "deleted", []string{"100"}, func(t *testing.T, h *holder, img string) string {
			id, gid := remap(t, img)
			g := fmt.Sprintf("ghost-file-%x.img", gid)
			if err := os.Remove(filepath.Join(img, g)); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("task %d (%s) fd 3: deleted file %s/gone: restore would not bring it back: file id %d (%s/gone) is a deleted file whose content should be in %s: it is missing", h.Pid, comm(h.Pid), h.dir, id, h.dir, g) + tail
		}},
		{"ghost content cut short", "deleted", []string{"100"}, func(t *testing.T, h *holder, img string) string {
			_, gid := remap(t, img)
			g := fmt.Sprintf("ghost-file-%x.img", gid)
			p := filepath.Join(img, g)
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, fi.Size()-40); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("task %d (%s) fd 3: deleted file %s/gone: restore would not bring it back: %s: it holds 60 bytes of the file's 100", h.Pid, comm(h.Pid), h.dir, g) + tail
		}},
		{"ghost content changed", "deleted", []string{"100"}, func(t *testing.T, h *holder, img string) string {
			_, gid := remap(t, img)
			g := fmt.Sprintf("ghost-file-%x.img", gid)
			p := filepath.Join(img, g)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-1] ^= 0xff // the file's last byte, same length
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("task %d (%s) fd 3: deleted file %s/gone: restore would not bring it back: %s: its 100 bytes are not the file's", h.Pid, comm(h.Pid), h.dir, g) + tail
		}},
		{"deleted FIFO without its remap", "deleted-fifo", nil, func(t *testing.T, h *holder, img string) string {
			if err := os.Remove(filepath.Join(img, "remap-fpath.img")); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("task %d (%s) fd 3: deleted FIFO %s/fifo: restore would not bring it back: remap-fpath.img is missing", h.Pid, comm(h.Pid), h.dir) + tail
		}},
		{"link to an unlinked file gone", "unlinked-linked", nil, func(t *testing.T, h *holder, img string) string {
			_, lid := remap(t, img)
			link := fmt.Sprintf("%s/link_remap.%d", h.dir, lid)
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("task %d (%s) fd 3: deleted file %s/a: restore would not bring it back: the link %s dump made to it is gone or names another file", h.Pid, comm(h.Pid), h.dir, link) + tail
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := startHolder(t, c.kind, c.args...)
			mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", h.Pid))
			img := filepath.Join(t.TempDir(), "img")
			var want string
			_, err := Run(Options{Pid: h.Pid, ImagesDir: img, AfterImages: func() error {
				want = c.damage(t, h, img)
				return nil
			}})
			if err == nil || err.Error() != want {
				t.Fatalf("error\n %v\nwant\n %s", err, want)
			}
			expectUntouched(t, h.Pid, mapsBefore)
			if _, err := os.Stat(filepath.Join(img, images.InventoryFile)); err == nil {
				t.Errorf("a dump that failed its check wrote inventory.img")
			}
			if m, _ := filepath.Glob(filepath.Join(h.dir, "link_remap.*")); len(m) != 0 {
				t.Errorf("the failed dump left its links: %v", m)
			}
		})
	}
}
