package images

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// fixtureDir is a real CRIU 4.2 dump of counter.c (see its README). Tests
// only read it.
const fixtureDir = "/work/shared/testdata/criu-4.2/counter"

func fixture(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(fixtureDir); err != nil {
		t.Skipf("CRIU fixture not available: %v", err)
	}
	return fixtureDir
}

func fixtureFiles(t *testing.T) []string {
	ents, err := os.ReadDir(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) < 10 {
		t.Fatalf("fixture has only %d files", len(names))
	}
	return names
}

func TestFixtureJSONRoundTrip(t *testing.T) {
	for _, name := range fixtureFiles(t) {
		for _, pretty := range []bool{false, true} {
			orig, err := os.ReadFile(filepath.Join(fixtureDir, name))
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(bytes.NewReader(orig), name)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var js bytes.Buffer
			if err := DecodeJSON(r, &js, pretty); err != nil {
				t.Fatalf("%s: decode: %v", name, err)
			}
			if bytes.Contains(js.Bytes(), []byte(keyRaw)) {
				t.Errorf("%s: needed raw fallback:\n%.2000s", name, js.String())
			}
			var back bytes.Buffer
			if err := EncodeJSON(bytes.NewReader(js.Bytes()), &back, name); err != nil {
				t.Fatalf("%s: encode: %v\n%.3000s", name, err, js.String())
			}
			if !bytes.Equal(back.Bytes(), orig) {
				t.Errorf("%s (pretty=%v): encode(decode(x)) differs from x (%d vs %d bytes)", name, pretty, back.Len(), len(orig))
			}
		}
	}
}
