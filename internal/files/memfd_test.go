package files

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMemfdDataRuns: the runs of pages dump keeps of a memfd are those
// holding data, whole pages, the last one zero-padded past the size;
// holes are left out.
func TestMemfdDataRuns(t *testing.T) {
	fd, err := unix.MemfdCreate("gockpt-test", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "memfd")
	defer f.Close()
	const pg = 4096
	a := bytes.Repeat([]byte{'a'}, pg+10) // pages 0 and 1
	b := []byte("bbb")                    // page 5, the last, partial
	if _, err := f.WriteAt(a, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 5*pg+100); err != nil {
		t.Fatal(err)
	}
	runs, err := memfdDataRuns(f, 5*pg+103)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].off != 0 || len(runs[0].data) != 2*pg || runs[1].off != 5*pg || len(runs[1].data) != pg {
		for _, r := range runs {
			t.Logf("run at %d, %d bytes", r.off, len(r.data))
		}
		t.Fatalf("want runs [0, 2 pages) and [5 pages, 6 pages)")
	}
	if !bytes.Equal(runs[0].data[:len(a)], a) || !bytes.Equal(runs[0].data[len(a):], make([]byte, 2*pg-len(a))) {
		t.Error("first run: data differs")
	}
	if !bytes.Equal(runs[1].data[100:103], b) || runs[1].data[99] != 0 || runs[1].data[103] != 0 {
		t.Error("last run: data differs or is not zero-padded")
	}
	if runs, err := memfdDataRuns(f, 0); err != nil || len(runs) != 0 {
		t.Errorf("empty: %d runs, %v", len(runs), err)
	}
}
