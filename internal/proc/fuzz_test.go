package proc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addTestdata(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// formatMapsLine writes v the way the kernel does, for round trips.
func formatMapsLine(v *VMA) string {
	s := fmt.Sprintf("%08x-%08x %s %08x %02x:%02x %d ", v.Start, v.End, v.Perms, v.Offset, v.Major, v.Minor, v.Inode)
	if v.Path != "" {
		s += strings.Repeat(" ", 10) + v.Path
	}
	if v.Deleted {
		s += deletedSuffix
	}
	return s
}

// FuzzParseMaps: never panic; what parses, written back, parses the same.
func FuzzParseMaps(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new interesting input, which
	// on the 17 kB captured file stalls it for most of a minute each time.
	f.Add([]byte("55ca7d4b8000-55ca7d68a000 rw-p 00000000 00:00 0                          [heap]\n" +
		"7f1ad5fba000-7f1ad5fbb000 r--p 00000000 fe:00 9980388                    /tmp/dir with space/gone.bin (deleted)\n" +
		"7f1ad6065000-7f1ad6067000 rw-s 00000000 fe:00 9980310                    /tmp/dir with space/my file (1).bin\n" +
		"7f1ad6074000-7f1ad6076000 r--p 00000000 00:00 0                          [vvar_vclock]\n" +
		"7f1ad541d000-7f1ad573e000 rw-p 00000000 00:00 0 \n" +
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"))
	f.Add([]byte("7f0000000000-7f0000003000 rw-p 00000000 00:00 0                          [anon:my region]\n"))
	f.Add([]byte("00400000-00401000 r--p 00000000 fe:00 7 /a b (deleted)\n00400000-00401000 r--p 00000000 fe:00 7"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vmas, err := ParseMaps(bytes.NewReader(data))
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for i := range vmas {
			v := &vmas[i]
			if v.End < v.Start {
				t.Fatalf("VMA %+v ends before it starts", v)
			}
			line := formatMapsLine(v)
			w, err := ParseMapsLine([]byte(line))
			if err != nil || w != *v {
				t.Fatalf("%+v written as %q parses to %+v, %v", v, line, w, err)
			}
			_ = v.AnonName()
			_ = v.String()
		}
	})
}

// FuzzParseStat: never panic; comm is what lies between the first '(' and
// the last ')'.
func FuzzParseStat(f *testing.F) {
	addTestdata(f, "stat")
	f.Add([]byte("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 6 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"))
	f.Add([]byte("77 (x) (\n) )) Z 1 77 77 34816 77 4194308 0 0 0 0 0 0 0 0 20 0 1 0 123 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 256 99 98"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		open, closing := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if st.Comm != string(data[open+1:closing]) {
			t.Fatalf("comm %q from %q", st.Comm, data)
		}
	})
}

// FuzzParseOthers: the remaining parsers never panic and fail only with a
// *ParseError.
func FuzzParseOthers(f *testing.F) {
	names := []string{"smaps", "status", "mountinfo", "timers", "fdinfo-epoll", "fdinfo-inotify", "fdinfo-timerfd", "auxv"}
	for i, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 600 {
			b = b[:600] // see FuzzParseMaps on seed size
		}
		f.Add(uint8(i), b)
	}
	f.Add(uint8(8), []byte("12 13 \n"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		var err error
		r := bytes.NewReader(data)
		switch which % 9 {
		case 0:
			_, err = ParseSmaps(r)
		case 1:
			_, err = ParseStatus(r)
		case 2:
			var ms []Mount
			ms, err = ParseMountinfo(r)
			for i := range ms {
				ms[i].SharedID()
				ms[i].Unbindable()
			}
		case 3:
			_, err = ParseTimers(r)
		case 4, 5, 6:
			_, err = ParseFdinfo(r)
		case 7:
			var a []uint64
			a, err = ParseAuxv(data)
			if err == nil && (len(a)%2 != 0 || a[len(a)-2] != 0) {
				t.Fatalf("auxv %v does not end in AT_NULL", a)
			}
		case 8:
			_, err = ParseChildren(data)
		}
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
	})
}
