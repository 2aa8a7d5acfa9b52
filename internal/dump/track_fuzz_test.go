package dump

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gockpt/gockpt/internal/testproc"
)

// FuzzParseTrackState: a pre-dump's gockpt-track.json comes from disk and
// may be damaged; decoding must fail cleanly or give a state whose areas
// are sane, and a state that decodes re-encodes to one that decodes the same.
func FuzzParseTrackState(f *testing.F) {
	f.Add([]byte(`{"pre_dump":true,"backend":"uffd-wp","generation":"ab","keeper_addr":"gockpt-keeper-1","keeper_pid":7,"tasks":[{"pid":5,"start_time":9,"vmas":[[4096,8192]]}]}`))
	f.Add([]byte(`{"backend":"hashes","tasks":null}`))
	f.Add([]byte(`{"backend":"soft-dirty","tasks":[{"pid":1,"vmas":[[8192,4096]]}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseTrackState(b)
		if err != nil {
			return
		}
		for _, tk := range s.Tasks {
			for _, v := range tk.VMAs {
				if v[0] >= v[1] {
					t.Fatalf("accepted area %#x-%#x", v[0], v[1])
				}
			}
			tk.covers(0, 4096)
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := parseTrackState(out)
		if err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		out2, _ := json.Marshal(s2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the state:\n%s\n%s", out, out2)
		}
	})
}

// FuzzParseHashes: a hashes file is accepted only with the magic and
// exactly one hash per page.
func FuzzParseHashes(f *testing.F) {
	f.Add([]byte(hashMagic+"0123456789abcdef"), int64(1))
	f.Add([]byte(hashMagic), int64(0))
	f.Add([]byte("GOCKPTH2"), int64(0))
	f.Add([]byte{}, int64(-1))
	f.Add([]byte(hashMagic+"0123456789abcdef"), int64(1<<60+1))
	f.Fuzz(func(t *testing.T, b []byte, pages int64) {
		sums, err := parseHashes(b, pages)
		if err != nil {
			return
		}
		if int64(len(sums)) != pages*hashSize || pages < 0 {
			t.Fatalf("accepted %d bytes of hashes for %d pages", len(sums), pages)
		}
	})
}

// TestPrevImagesDirErrors: a wrong --prev-images-dir is named with the fix,
// before the tree is touched.
func TestPrevImagesDirErrors(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "notimages"), 0o700)
	p := testproc.Start(t, "/bin/sleep", "30")
	for _, c := range []struct{ prev, want string }{
		{"../nope", "no directory"},
		{"../notimages", "holds no inventory.img"},
	} {
		_, err := Run(Options{Pid: p.Pid, ImagesDir: filepath.Join(dir, "new"), PrevImagesDir: c.prev})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--prev-images-dir %s: %v, want %q", c.prev, err, c.want)
		}
		if !testproc.Alive(p.Pid) {
			t.Fatal("the target died")
		}
	}
}
