package proc

import (
	"bytes"
	"os"
	"testing"
)

func BenchmarkParseMaps(b *testing.B) {
	data, err := os.ReadFile("testdata/maps")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMaps(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSmaps(b *testing.B) {
	data, err := os.ReadFile("testdata/smaps")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSmaps(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
