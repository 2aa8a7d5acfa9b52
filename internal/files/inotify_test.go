package files

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

// TestParseInotifyWd: a watch line as Linux 6.x prints it (all hex), one
// of a filesystem without file handles, and lines that are refused.
func TestParseInotifyWd(t *testing.T) {
	got, err := parseInotifyWd("inotify wd:1a ino:3c4a3 sdev:fe00000 mask:80000100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a3c4030000000001")
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, fhandleWords)
	words[0] = 0x01000000_0003c4a3
	want := &pb.InotifyWdEntry{Wd: u32(0x1a), IIno: u64(0x3c4a3), SDev: u32(0xfe00000), Mask: u32(0x80000100), IgnoredMask: u32(0),
		FHandle: &pb.FhEntry{Bytes: u32(8), Type: u32(1), Handle: words}}
	if !proto.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if b, err := handleBytes(got.GetFHandle()); err != nil || string(b) != "\xa3\xc4\x03\x00\x00\x00\x00\x01" {
		t.Errorf("handle bytes %x, %v", b, err)
	}
	got, err = parseInotifyWd("inotify wd:2 ino:1 sdev:15 mask:2 ignored_mask:0")
	if err != nil || got.FHandle != nil || got.GetWd() != 2 {
		t.Errorf("no handle: %v, %v", got, err)
	}
	for _, bad := range []string{
		"tfd: 3 events: 19",
		"inotify wd:0 ino:1 sdev:15 mask:2 ignored_mask:0",
		"inotify wd:1 ino:1 sdev:15 mask:2",
		"inotify wd:1 wd:2 ino:1 sdev:15 mask:2 ignored_mask:0",
		"inotify wd:1 ino:1 sdev:15 mask:100000000 ignored_mask:0",
		"inotify wd:1 ino:1 sdev:15 mask:2 ignored_mask:0 fhandle-bytes:4 fhandle-type:1 f_handle:a3c4030000000000",
		"inotify wd:1 ino:1 sdev:15 mask:2 ignored_mask:0 fhandle-bytes:1 fhandle-type:1 f_handle:zz",
		"inotify wd:1 ino:1 sdev:15 mask:2 ignored_mask:0 fhandle-type:1 f_handle:aa",
		"inotify wd:1 ino:1 sdev:15 mask:2 ignored_mask:0 fhandle-bytes:81 fhandle-type:1 f_handle:" + strings.Repeat("00", 0x81),
		"inotify wd ino:1",
	} {
		if w, err := parseInotifyWd(bad); err == nil {
			t.Errorf("%q: accepted as %v", bad, w)
		}
	}
}

// FuzzParseInotifyWd: never panics; what it accepts has a file handle
// that fits CRIU's 16 words and unpacks to its size.
func FuzzParseInotifyWd(f *testing.F) {
	f.Add("inotify wd:1 ino:3c4a3 sdev:fe00000 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a3c4030000000000")
	f.Add("inotify wd:7fffffff ino:1 sdev:15 mask:2 ignored_mask:0")
	f.Fuzz(func(t *testing.T, line string) {
		w, err := parseInotifyWd(line)
		if err != nil {
			return
		}
		if w.GetWd() == 0 {
			t.Errorf("%q: wd 0 accepted", line)
		}
		if fh := w.GetFHandle(); fh != nil {
			b, err := handleBytes(fh)
			if err != nil || len(b) != int(fh.GetBytes()) || len(fh.GetHandle()) != fhandleWords {
				t.Errorf("%q: handle %v: %d bytes, %v", line, fh, len(b), err)
			}
		}
	})
}
