package files

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// TestParseFanotify: the group line and mark lines as Linux 6.18 prints
// them (all hex), marks CRIU's image cannot hold, and lines refused.
func TestParseFanotify(t *testing.T) {
	fa, ev, err := parseFanotifyGroup("e01 event-flags:8000")
	if err != nil || fa != 0xe01 || ev != 0x8000 {
		t.Errorf("group: %#x %#x %v", fa, ev, err)
	}
	for _, bad := range []string{"", "2", "2 event-flags:", "zz event-flags:0", "2 event-flags:100000000"} {
		if _, _, err := parseFanotifyGroup(bad); err == nil {
			t.Errorf("group %q accepted", bad)
		}
	}

	got, err := parseFanotifyMark("fanotify ino:98401d sdev:fe00000 mflags:440 mask:0 ignored_mask:40000020 fhandle-bytes:8 fhandle-type:1 f_handle:1d40980051887dd9")
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, fhandleWords)
	words[0] = 0xd97d8851_0098401d
	want := &pb.FanotifyMarkEntry{Type: pb.MarkType_INODE.Enum(), Mflags: u32(0x440), Mask: u32(0), IgnoredMask: u32(0x40000020), SDev: u32(0xfe00000),
		Ie: &pb.FanotifyInodeMarkEntry{IIno: u64(0x98401d), FHandle: &pb.FhEntry{Bytes: u32(8), Type: u32(1), Handle: words}}}
	if !proto.Equal(got, want) {
		t.Errorf("inode: got %v\nwant %v", got, want)
	}
	got, err = parseFanotifyMark("fanotify mnt_id:1b mflags:0 mask:8 ignored_mask:0")
	want = &pb.FanotifyMarkEntry{Type: pb.MarkType_MOUNT.Enum(), Mflags: u32(0), Mask: u32(8), IgnoredMask: u32(0), SDev: u32(0),
		Me: &pb.FanotifyMountMarkEntry{MntId: u32(0x1b)}}
	if err != nil || !proto.Equal(got, want) {
		t.Errorf("mount: got %v, %v\nwant %v", got, err, want)
	}
	// No file handle: kept without one, and refused by Check.
	got, err = parseFanotifyMark("fanotify ino:5 sdev:15 mflags:0 mask:2 ignored_mask:0")
	if err != nil || got.GetIe().GetFHandle().GetBytes() != 0 {
		t.Errorf("no handle: %v, %v", got, err)
	}
	for line, what := range map[string]string{
		"fanotify sdev:fe00000 mflags:0 mask:8 ignored_mask:0":            "a filesystem mark (device 254:0; mask 0x8, ignored mask 0x0)",
		"fanotify mnt_ns:4026531832 mflags:0 mask:1000000 ignored_mask:0": "a mount-namespace mark (mnt:[4026531832]; mask 0x1000000, ignored mask 0x0)",
	} {
		_, err := parseFanotifyMark(line)
		var u *unkeptMarkError
		if !errors.As(err, &u) || u.what != what {
			t.Errorf("%q: %v, want %q", line, err, what)
		}
	}
	for _, bad := range []string{
		"inotify wd:1 ino:1 sdev:15 mask:2 ignored_mask:0",
		"fanotify ino:1 sdev:15 mask:2 ignored_mask:0",
		"fanotify ino:1 sdev:15 mflags:0 mask:2",
		"fanotify ino:1 mflags:0 mask:2 ignored_mask:0",
		"fanotify mnt_id:1 mnt_id:2 mflags:0 mask:2 ignored_mask:0",
		"fanotify mnt_id:100000000 mflags:0 mask:2 ignored_mask:0",
		"fanotify mflags:0 mask:2 ignored_mask:0",
		"fanotify ino:1 sdev:15 mflags:0 mask:2 ignored_mask:0 fhandle-bytes:4 fhandle-type:1 f_handle:a3c4030000000000",
		"fanotify ino:1 sdev:15 mflags:0 mask:2 ignored_mask:0 fhandle-bytes:81 fhandle-type:1 f_handle:" + strings.Repeat("00", 0x81),
		"fanotify sdev:zz mflags:0 mask:8 ignored_mask:0",
		"fanotify ino",
	} {
		if m, err := parseFanotifyMark(bad); err == nil {
			t.Errorf("%q: accepted as %v", bad, m)
		}
	}
}

// FuzzParseFanotifyMark: never panics; what it accepts is an inode mark
// with a handle that fits CRIU's 16 words (or none), or a mount mark.
func FuzzParseFanotifyMark(f *testing.F) {
	f.Add("fanotify ino:98401d sdev:fe00000 mflags:40 mask:a ignored_mask:20 fhandle-bytes:8 fhandle-type:1 f_handle:1d40980051887dd9")
	f.Add("fanotify mnt_id:1b mflags:0 mask:8 ignored_mask:0")
	f.Add("fanotify sdev:fe00000 mflags:0 mask:8 ignored_mask:0")
	f.Add("fanotify mnt_ns:4026531832 mflags:0 mask:1000000 ignored_mask:0")
	f.Fuzz(func(t *testing.T, line string) {
		parseFanotifyGroup(line)
		m, err := parseFanotifyMark(line)
		if err != nil {
			return
		}
		switch m.GetType() {
		case pb.MarkType_INODE:
			fh := m.GetIe().GetFHandle()
			if m.Me != nil || fh == nil {
				t.Fatalf("%q: inode mark %v", line, m)
			}
			if fh.GetBytes() == 0 {
				return
			}
			b, err := handleBytes(fh)
			if err != nil || len(b) != int(fh.GetBytes()) || len(fh.GetHandle()) != fhandleWords {
				t.Errorf("%q: handle %v: %d bytes, %v", line, fh, len(b), err)
			}
		case pb.MarkType_MOUNT:
			if m.Ie != nil || m.Me == nil {
				t.Fatalf("%q: mount mark %v", line, m)
			}
		default:
			t.Errorf("%q: type %v", line, m.GetType())
		}
	})
}

// TestFanotifyRoundTrip: a group with marks of each kind CRIU's image holds
// (ignored masks of both APIs, evictable, on a directory with FAN_ONDIR, a
// mount mark with only an ignored mask), read from fdinfo and made again by
// Open, shows the same group and mark lines in the same order.
func TestFanotifyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	file, sub := dir+"/f", dir+"/d"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_NONBLOCK|unix.FAN_CLOEXEC|unix.FAN_REPORT_FID, unix.O_RDONLY)
	if err != nil {
		t.Skipf("fanotify_init: %v", err)
	}
	defer unix.Close(fd)
	for _, m := range []struct {
		flags uint
		mask  uint64
		path  string
	}{
		{unix.FAN_MARK_ADD, unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE, file},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_IGNORED_MASK | unix.FAN_MARK_IGNORED_SURV_MODIFY, unix.FAN_OPEN, file},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_IGNORE | unix.FAN_MARK_IGNORED_SURV_MODIFY, unix.FAN_OPEN | unix.FAN_ONDIR, sub},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_MOUNT | unix.FAN_MARK_IGNORED_MASK | unix.FAN_MARK_IGNORED_SURV_MODIFY, unix.FAN_ACCESS, dir},
		{unix.FAN_MARK_ADD | unix.FAN_MARK_EVICTABLE, unix.FAN_CREATE | unix.FAN_ONDIR | unix.FAN_EVENT_ON_CHILD, dir},
	} {
		if err := unix.FanotifyMark(fd, m.flags, m.mask, unix.AT_FDCWD, m.path); err != nil {
			t.Fatalf("fanotify_mark(%#x, %#x, %s): %v", m.flags, m.mask, m.path, err)
		}
	}
	lines := func(fd int) []string {
		info, err := proc.ReadFdinfo(os.Getpid(), fd)
		if err != nil {
			t.Fatal(err)
		}
		return append([]string{info.Fields["fanotify flags"]}, info.Entries...)
	}
	want := lines(fd)
	info, _ := proc.ReadFdinfo(os.Getpid(), fd)
	fa, ev, marks, err := fanotifyGroup(&fdState{pid: os.Getpid(), fd: fd, info: info})
	if err != nil || len(marks) != 4 { // the two calls on file make one mark
		t.Fatalf("%d marks, %v", len(marks), err)
	}
	k := newFanotifyKind()
	defer k.Close()
	f, err := k.Open(nil, &pb.FileEntry{Ffy: &pb.FanotifyFileEntry{Faflags: u32(fa), Evflags: u32(ev), Flags: u32(unix.O_RDWR | unix.O_NONBLOCK), Mark: marks}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := lines(int(f.Fd())); !slices.Equal(got, want) {
		t.Errorf("restored group\n %q\nwant\n %q", got, want)
	}
}
