package proc

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The testdata files were captured on Linux 6.18 from a python process that
// named itself "a) b (c)) d", mapped "/tmp/dir with space/my file (1).bin"
// shared, mapped and unlinked ".../gone.bin", madvised part of a mapping
// DONTDUMP, opened an eventfd, epoll, inotify, signalfd and timerfd, created
// three posix timers, blocked SIGUSR1, ignored SIGTERM and set umask 027.

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseMapsCaptured(t *testing.T) {
	vmas, err := ParseMaps(bytes.NewReader(testdata(t, "maps")))
	if err != nil {
		t.Fatal(err)
	}
	if len(vmas) != 129 {
		t.Fatalf("%d VMAs, want 129", len(vmas))
	}
	kinds := map[Kind]int{}
	for i, v := range vmas {
		kinds[v.Kind]++
		if i > 0 && v.Start < vmas[i-1].End {
			t.Errorf("%v overlaps or precedes %v", &v, &vmas[i-1])
		}
	}
	for _, k := range []Kind{KindHeap, KindStack, KindVDSO, KindVVAR, KindVVARVClock, KindVSyscall} {
		if kinds[k] != 1 {
			t.Errorf("%d VMAs of kind %v, want 1", kinds[k], k)
		}
	}
	want := VMA{Start: 0x7f1ad6065000, End: 0x7f1ad6067000, Perms: PermRead | PermWrite | PermShared,
		Major: 0xfe, Inode: 9980310, Path: "/tmp/dir with space/my file (1).bin", Kind: KindFile}
	if vmas[116] != want {
		t.Errorf("vmas[116] = %+v\nwant %+v", vmas[116], want)
	}
	want = VMA{Start: 0x7f1ad5fba000, End: 0x7f1ad5fbb000, Perms: PermRead,
		Major: 0xfe, Inode: 9980388, Path: "/tmp/dir with space/gone.bin", Deleted: true, Kind: KindFile}
	if vmas[107] != want {
		t.Errorf("vmas[107] = %+v\nwant %+v", vmas[107], want)
	}
	vs := vmas[128]
	if vs.Kind != KindVSyscall || vs.Start != 0xffffffffff600000 || vs.Perms != PermExec || vs.Path != "[vsyscall]" {
		t.Errorf("last VMA = %+v", vs)
	}
	if vmas[0].Path != vmas[1].Path || vmas[0].Offset != 0 || vmas[1].Offset == 0 {
		t.Errorf("first VMAs: %+v %+v", vmas[0], vmas[1])
	}
}

func TestParseMapsLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want VMA
	}{
		{"7f0000000000-7f0000003000 rw-p 00000000 00:00 0                          [anon:my region]",
			VMA{Start: 0x7f0000000000, End: 0x7f0000003000, Perms: PermRead | PermWrite, Path: "[anon:my region]", Kind: KindAnonNamed}},
		{"7f0000000000-7f0000003000 rw-s 00000000 00:01 1042                       [anon_shmem:x) y]",
			VMA{Start: 0x7f0000000000, End: 0x7f0000003000, Perms: PermRead | PermWrite | PermShared, Minor: 1, Inode: 1042, Path: "[anon_shmem:x) y]", Kind: KindAnonShmemNamed}},
		{"7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ",
			VMA{Start: 0x7f0000000000, End: 0x7f0000001000, Perms: PermRead | PermWrite, Kind: KindAnon}},
		{"7f0000000000-7f0000001000 rw-p 00000000 00:00 0",
			VMA{Start: 0x7f0000000000, End: 0x7f0000001000, Perms: PermRead | PermWrite, Kind: KindAnon}},
		{"7f0000000000-7f0000001000 rw-s 00000000 00:01 5                          /memfd:buf (deleted)",
			VMA{Start: 0x7f0000000000, End: 0x7f0000001000, Perms: PermRead | PermWrite | PermShared, Minor: 1, Inode: 5, Path: "/memfd:buf", Deleted: true, Kind: KindFile}},
		{"7f0000000000-7f0000001000 r--s 00000000 00:01 32768                      /SYSV00000000 (deleted)",
			VMA{Start: 0x7f0000000000, End: 0x7f0000001000, Perms: PermRead | PermShared, Minor: 1, Inode: 32768, Path: "/SYSV00000000", Deleted: true, Kind: KindFile}},
		{"7ffff7ff9000-7ffff7ffa000 r-xp 00000000 00:00 0                          [uprobes]",
			VMA{Start: 0x7ffff7ff9000, End: 0x7ffff7ffa000, Perms: PermRead | PermExec, Path: "[uprobes]", Kind: KindUprobes}},
		{"7ffff7ff9000-7ffff7ffa000 rw-p 00000000 00:00 0                          [stack:1234]",
			VMA{Start: 0x7ffff7ff9000, End: 0x7ffff7ffa000, Perms: PermRead | PermWrite, Path: "[stack:1234]", Kind: KindStack}},
		// A name that ends in spaces keeps them; one made of 20 spaces too.
		{"00400000-00401000 r--p 00001000 103:02 12  /a b/c  ",
			VMA{Start: 0x400000, End: 0x401000, Perms: PermRead, Offset: 0x1000, Major: 0x103, Minor: 2, Inode: 12, Path: "/a b/c  ", Kind: KindFile}},
		// Long inode and offset of a big file.
		{"00400000-00401000 r--p 1fffffffff000 fe:00 18446744073709551615 /big",
			VMA{Start: 0x400000, End: 0x401000, Perms: PermRead, Offset: 0x1fffffffff000, Major: 0xfe, Inode: 1<<64 - 1, Path: "/big", Kind: KindFile}},
		{"00400000-00401000 r--p 00000000 fe:00 7 anon_inode:[perf_event]",
			VMA{Start: 0x400000, End: 0x401000, Perms: PermRead, Major: 0xfe, Inode: 7, Path: "anon_inode:[perf_event]", Kind: KindOther}},
	} {
		got, err := ParseMapsLine([]byte(tc.line))
		if err != nil {
			t.Errorf("ParseMapsLine(%q): %v", tc.line, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseMapsLine(%q)\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
	v, _ := ParseMapsLine([]byte("7f0000000000-7f0000003000 rw-p 00000000 00:00 0 [anon:my region]"))
	if v.AnonName() != "my region" || v.Len() != 0x3000 || v.String() != "VMA 0x7f0000000000-0x7f0000003000 rw-p [anon:my region]" {
		t.Errorf("AnonName %q Len %#x String %q", v.AnonName(), v.Len(), v.String())
	}
}

func TestParseMapsErrors(t *testing.T) {
	good := "00400000-00401000 r--p 00000000 fe:00 7 /x\n"
	for _, tc := range []struct{ line, want string }{
		{"", `maps:2: missing address range in maps line ""`},
		{"00400000 r--p 00000000 fe:00 7 /x", `maps:2: bad address range "00400000"`},
		{"00401000-00400000 r--p 00000000 fe:00 7 /x", `maps:2: bad address range "00401000-00400000"`},
		{"0040000g-00401000 r--p 00000000 fe:00 7 /x", `maps:2: bad address range "0040000g-00401000"`},
		{"00400000-1ffffffffffffffff r--p 00000000 fe:00 7 /x", `maps:2: bad address range "00400000-1ffffffffffffffff"`},
		{"00400000-00401000 r--q 00000000 fe:00 7 /x", `maps:2: bad permissions "r--q"`},
		{"00400000-00401000 rw 00000000 fe:00 7 /x", `maps:2: bad permissions "rw"`},
		{"00400000-00401000 r--p zz fe:00 7 /x", `maps:2: bad offset "zz"`},
		{"00400000-00401000 r--p 00000000 fe00 7 /x", `maps:2: bad device "fe00"`},
		{"00400000-00401000 r--p 00000000 fe:00 -7 /x", `maps:2: bad inode "-7"`},
		{"00400000-00401000 r--p 00000000 fe:00", `maps:2: missing device in maps line "fe:00"`},
		{"00400000-00401000 r--p 00000000 fe:00 ", `maps:2: bad inode ""`},
	} {
		_, err := ParseMaps(strings.NewReader(good + tc.line + "\n" + good))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseMaps(%q) err = %v\nwant %s", tc.line, err, tc.want)
		}
	}
}

func TestParseSmapsCaptured(t *testing.T) {
	vmas, err := ParseSmaps(bytes.NewReader(testdata(t, "smaps")))
	if err != nil {
		t.Fatal(err)
	}
	maps, err := ParseMaps(bytes.NewReader(testdata(t, "maps")))
	if err != nil {
		t.Fatal(err)
	}
	if len(vmas) != len(maps) {
		t.Fatalf("%d smaps VMAs, %d maps VMAs", len(vmas), len(maps))
	}
	var dontDump int
	for _, v := range vmas {
		if v.Flags.DontDump() {
			dontDump++
		}
		switch v.Kind {
		case KindStack:
			if !v.Flags.GrowsDown() || v.Flags.String() != "ac gd me mr mw rd wr" {
				t.Errorf("stack flags %q", v.Flags)
			}
			if v.Rss == 0 || v.Rss%4096 != 0 {
				t.Errorf("stack Rss %d", v.Rss)
			}
		case KindVVAR:
			if !v.Flags.IO() || !v.Flags.PFNMap() || !v.Flags.DontDump() || v.Flags.GrowsDown() {
				t.Errorf("vvar flags %q", v.Flags)
			}
		}
		if v.Shared() != v.Flags.MayShare() {
			t.Errorf("%v: perms %v but flags %q", &v.VMA, v.Perms, v.Flags)
		}
	}
	// vvar, vvar_vclock, vdso's data and the madvised page.
	if dontDump < 3 {
		t.Errorf("%d DONTDUMP VMAs, want at least 3", dontDump)
	}
}

func TestParseSmapsInline(t *testing.T) {
	const s = `7ffd696e8000-7ffd69709000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  24 kB
Pss:                  24 kB
Anonymous:            24 kB
Swap:                  8 kB
Locked:                0 kB
THPeligible:           0
ProtectionKey:         0
VmFlags: rd wr mr mw me gd ac sd uw zz zz 
7f0000000000-7f0000001000 ---p 00000000 00:00 0 
Size:                  4 kB
VmFlags: mr mw me 
`
	vmas, err := ParseSmaps(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	if len(vmas) != 2 {
		t.Fatalf("%d VMAs", len(vmas))
	}
	v := vmas[0]
	if v.Rss != 24<<10 || v.Pss != 24<<10 || v.Anonymous != 24<<10 || v.Swap != 8<<10 || v.Locked != 0 {
		t.Errorf("counters %+v", v)
	}
	if !v.Flags.SoftDirty() || !v.Flags.UffdWP() || !v.Flags.Has("zz") || v.Flags.Has("dd") || v.Flags.Has("xx") {
		t.Errorf("flags %q", v.Flags)
	}
	if got, want := v.Flags.List(), []string{"ac", "gd", "me", "mr", "mw", "rd", "sd", "uw", "wr", "zz"}; !reflect.DeepEqual(got, want) {
		t.Errorf("List() = %q, want %q", got, want)
	}
	if vmas[1].Flags.String() != "me mr mw" || vmas[1].Perms != 0 {
		t.Errorf("second VMA %+v", vmas[1])
	}
	for _, tc := range []struct{ in, want string }{
		{"Rss: 4 kB\n", `smaps:1: "Rss" before the first VMA line`},
		{"7f0000000000-7f0000001000 ---p 00000000 00:00 0\nRss: four kB\n", `smaps:2: bad Rss value "four kB", want "N kB"`},
		{"7f0000000000-7f0000001000 ---p 00000000 00:00 0\nSwap: 4 MB\n", `smaps:2: bad Swap value "4 MB", want "N kB"`},
		{"7f0000000000-7f0000001000 ---p 00000000 00:00 0\nRss 4 kB\n", `smaps:2: bad address range "Rss"`},
	} {
		_, err := ParseSmaps(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseSmaps(%q) err = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestParseStatusCaptured(t *testing.T) {
	st, err := ParseStatus(bytes.NewReader(testdata(t, "status")))
	if err != nil {
		t.Fatal(err)
	}
	want := &Status{
		Name: "a) b (c)) d", State: 'R', Tgid: 8614, Pid: 8614, PPid: 8611,
		Groups: []uint32{}, NSpid: []int{8614}, NStgid: []int{8614}, NSsid: []int{1955}, NSpgid: []int{8611},
		Threads: 1, SigQueued: 3, SigQueueLimit: 96365,
		SigBlk: 0x200, SigIgn: 0x1005000, SigCgt: 0x2,
		CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff,
		Umask: 0o027, HasUmask: true,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
}

func TestParseStatusInline(t *testing.T) {
	const s = "Name:\tsh\\nx\nUmask:\t0777\nState:\tt (tracing stop)\nTgid:\t12\nPid:\t13\nPPid:\t1\nTracerPid:\t99\n" +
		"Uid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\nGroups:\t4 24 27 \nNStgid:\t12\t1\nNSpid:\t13\t2\nNSpgid:\t12\t1\nNSsid:\t12\t1\n" +
		"Kthread:\t0\nThreads:\t2\nSigQ:\t0/63480\nSigPnd:\t0000000000000100\nShdPnd:\tffffffffffffffff\nSigBlk:\t0\nSigIgn:\t0\nSigCgt:\t0\n" +
		"CapInh:\t0\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000001\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\n" +
		"Speculation_Store_Bypass:\tthread vulnerable\n"
	st, err := ParseStatus(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	want := &Status{
		Name: `sh\nx`, State: 't', Tgid: 12, Pid: 13, PPid: 1, TracerPid: 99,
		Uid: [4]uint32{1000, 1001, 1002, 1003}, Gid: [4]uint32{5, 6, 7, 8}, Groups: []uint32{4, 24, 27},
		NSpid: []int{13, 2}, NStgid: []int{12, 1}, NSsid: []int{12, 1}, NSpgid: []int{12, 1},
		Threads: 2, SigQueueLimit: 63480, SigPnd: 0x100, ShdPnd: 1<<64 - 1,
		CapBnd: 0x1ffffffffff, CapAmb: 1, NoNewPrivs: true, Seccomp: 2, SeccompFilters: 3,
		Umask: 0o777, HasUmask: true,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"Name:\tx\nbroken\n", `status:2: line "broken" has no ':'`},
		{"Name:\tx\nUid:\t1 2 3\n", `status:2: bad Uid value "1 2 3": want 4 ids: real, effective, saved, filesystem`},
		{"SigBlk:\t1ffffffffffffffff\n", `status:1: bad SigBlk value "1ffffffffffffffff": want a 64-bit hex mask`},
		{"Pid:\tx\n", `status:1: bad Pid value "x": want a decimal number`},
		{"SigQ:\t1\n", `status:1: bad SigQ value "1": want queued/limit`},
		{"Umask:\t0888\n", `status:1: bad Umask value "0888": want an octal mask`},
		{"State:\t\n", `status:1: bad State value "": want a state letter`},
		{"NSpid:\t1 x\n", `status:1: bad NSpid value "1 x": want decimal numbers`},
		{"Groups:\t-1\n", `status:1: bad Groups value "-1": want group ids`},
	} {
		_, err := ParseStatus(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseStatus(%q) err = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestParseStatCaptured(t *testing.T) {
	st, err := ParseStat(testdata(t, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Stat{
		Pid: 8614, Comm: "a) b (c)) d", State: 'R', PPid: 8611, Pgrp: 8611, Session: 1955, TPGid: -1,
		Flags: 4194304, NumThreads: 1, StartTime: 37621,
		StartCode: 94327387123712, EndCode: 94327387124053, StartStack: 140726372430816, ExitSignal: 17,
		StartData: 94327387135408, EndData: 94327387136024, StartBrk: 94328173854720,
		ArgStart: 140726372436087, ArgEnd: 140726372436178, EnvStart: 140726372436178, EnvEnd: 140726372437967,
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("got  %+v\nwant %+v", st, want)
	}
	if st.IsKernelThread() {
		t.Error("python is not a kernel thread")
	}
}

func TestParseStatTricky(t *testing.T) {
	// A kernel thread (kthreadd) as this kernel prints it.
	const kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 6 0 0 20 0 1 0 2 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	st, err := ParseStat([]byte(kthreadd))
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsKernelThread() || st.Comm != "kthreadd" || st.ExitSignal != 0 || st.StartCode != 0 {
		t.Errorf("kthreadd: %+v", st)
	}
	// comm may hold a newline, '(' and ')': the last ')' ends it. A zombie
	// with exit code 256 and extra fields a future kernel might add.
	const tricky = "77 (x) (\n) )) Z 1 77 77 34816 77 4194308 0 0 0 0 0 0 0 0 20 0 1 0 123 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 256 99 98"
	st, err = ParseStat([]byte(tricky))
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "x) (\n) )" || st.State != 'Z' || st.TTYNr != 34816 || st.TPGid != 77 || st.ExitCode != 256 || st.StartTime != 123 {
		t.Errorf("tricky: %+v", st)
	}
	for _, tc := range []struct{ in, want string }{
		{"", `stat: no (comm) in ""`},
		{"1 (x", `stat: no (comm) in "1 (x"`},
		{"1 )x( R", `stat: no (comm) in "1 )x( R"`},
		{"x (a) R 1", `stat: bad pid "x "`},
		{"1 (a) R 1 2 3", `stat: 6 fields, want at least 52`},
		{strings.Replace(kthreadd, " S ", " SS ", 1), `stat: bad state "SS"`},
		{strings.Replace(kthreadd, "2129984", "-1", 1), `stat: field 9: bad number "-1"`},
		{strings.Replace(kthreadd, " 0 0 0 0 0 0 0 0 0 0 0 0 0\n", " 0 0 0 0 0 0 0 0 0 0 0 0 x\n", 1), `stat: field 52: bad number "x"`},
		{strings.Replace(kthreadd, "(kthreadd) S", "(kthreadd)  S", 1), `stat: bad state ""`},
	} {
		_, err := ParseStat([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseStat(%q) err = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestParseFdinfoCaptured(t *testing.T) {
	for _, tc := range []struct {
		file    string
		flags   uint32
		fields  map[string]string
		entries []string
	}{
		{file: "fdinfo-regular", flags: 02100002},
		{file: "fdinfo-eventfd", flags: 04002, fields: map[string]string{"eventfd-count": "7", "eventfd-id": "2", "eventfd-semaphore": "0"}},
		{file: "fdinfo-epoll", flags: 02000002, entries: []string{"tfd:        7 events:       19 data:                7  pos:0 ino:40e sdev:10"}},
		{file: "fdinfo-inotify", flags: 0, entries: []string{"inotify wd:1 ino:3c4a3 sdev:fe00000 mask:100 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:a3c4030000000000"}},
		{file: "fdinfo-signalfd", flags: 02, fields: map[string]string{"sigmask": "0000000000000200"}},
		{file: "fdinfo-timerfd", flags: 02, fields: map[string]string{"clockid": "1", "ticks": "0", "settime flags": "00", "it_value": "(99, 991403570)", "it_interval": "(1, 0)"}},
	} {
		fi, err := ParseFdinfo(bytes.NewReader(testdata(t, tc.file)))
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if fi.Pos != 0 || fi.Flags != tc.flags || fi.MntID <= 0 || !fi.HasIno || fi.Ino == 0 ||
			!reflect.DeepEqual(fi.Fields, tc.fields) || !reflect.DeepEqual(fi.Entries, tc.entries) {
			t.Errorf("%s: got %+v", tc.file, fi)
		}
	}
}

func TestParseFdinfoInline(t *testing.T) {
	const s = "pos:\t4096\nflags:\t0100002\nmnt_id:\t31\nlock:\t1: POSIX  ADVISORY  WRITE 77 fe:00:12 0 EOF\nlock:\t2: FLOCK  ADVISORY  READ 77 fe:00:12 0 EOF\n" +
		"fanotify flags:10 event-flags:0\nfanotify ino:3c4a3 sdev:fe00000 mflags:0 mask:1 ignored_mask:0\n"
	fi, err := ParseFdinfo(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Pos != 4096 || fi.Flags != 0100002 || fi.MntID != 31 || fi.HasIno || len(fi.Entries) != 3 ||
		fi.Fields["fanotify flags"] != "10 event-flags:0" || !strings.HasPrefix(fi.Entries[2], "fanotify ino:") {
		t.Errorf("got %+v", fi)
	}
	for _, tc := range []struct{ in, want string }{
		{"pos:\t0\nflags:\t08\n", `fdinfo:2: bad flags "08", want octal`},
		{"pos:\t-1\n", `fdinfo:1: bad pos "-1"`},
		{"pos:\t0\nflags:\t0\nmnt_id:\tx\n", `fdinfo:3: bad mnt_id "x"`},
		{"pos:\t0\nflags:\t0\nino:\tx\n", `fdinfo:3: bad ino "x"`},
		{"pos:\t0\nflags:\t0\njunk\n", `fdinfo:3: line "junk" has no ':'`},
		{"pos:\t0\n", `fdinfo: no pos or flags line`},
	} {
		_, err := ParseFdinfo(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseFdinfo(%q) err = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestParseChildren(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{in: "", want: []int{}},
		{in: "7309 ", want: []int{7309}},
		{in: "12 13 4194304 ", want: []int{12, 13, 4194304}},
		{in: "12 x ", err: `children: bad pid "x"`},
		{in: "0 ", err: `children: bad pid "0"`},
	} {
		got, err := ParseChildren([]byte(tc.in))
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseChildren(%q) err = %v, want %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseChildren(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	mounts, err := ParseMountinfo(bytes.NewReader(testdata(t, "mountinfo")))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 20 {
		t.Fatalf("%d mounts, want 20", len(mounts))
	}
	want := Mount{ID: 22, ParentID: 27, Major: 0, Minor: 21, Root: "/", MountPoint: "/proc", Options: "rw,relatime", FSType: "proc", Source: "proc", SuperOptions: "rw"}
	if !reflect.DeepEqual(mounts[0], want) {
		t.Errorf("mounts[0] = %+v\nwant %+v", mounts[0], want)
	}

	const s = `36 35 98:0 /mnt1 /mnt\0402\134x rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue
37 36 0:50 / /media/a\011b ro,nosuid shared:12 propagate_from:3 unbindable - fuse.sshfs user@host:/my\040dir ro,user_id=0
38 36 0:51 / /x rw - tmpfs  rw
39 36 0:52 /\777 /y rw - tmpfs \12 rw
`
	mounts, err = ParseMountinfo(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	m := mounts[0]
	if m.MountPoint != `/mnt 2\x` || m.Major != 98 || m.MasterID() != 1 || m.SharedID() != 7 || m.Unbindable() || !m.HasOption("noatime") || m.HasOption("ro") || m.SuperOptions != "rw,errors=continue" {
		t.Errorf("mounts[0] = %+v", m)
	}
	m = mounts[1]
	if m.MountPoint != "/media/a\tb" || m.FSType != "fuse.sshfs" || m.Source != "user@host:/my dir" || m.SharedID() != 12 || m.PropagateFrom() != 3 || !m.Unbindable() || m.MasterID() != 0 {
		t.Errorf("mounts[1] = %+v", m)
	}
	if mounts[2].Source != "" || mounts[2].SuperOptions != "rw" || mounts[2].Optional != nil {
		t.Errorf("mounts[2] = %+v", mounts[2])
	}
	// Not an escape the kernel writes: kept as it is.
	if mounts[3].Root != `/\777` || mounts[3].Source != `\12` {
		t.Errorf("mounts[3] = %+v", mounts[3])
	}
	for _, tc := range []struct{ in, want string }{
		{"36 35 98:0 / /x rw - ext3 /dev/root\n", `mountinfo:1: want at least 10 fields in "36 35 98:0 / /x rw - ext3 /dev/root"`},
		{"36 35 98:0 / /x rw shared:1 ext3 /dev/root rw\n", `mountinfo:1: want "- fstype source super-options" at the end of "36 35 98:0 / /x rw shared:1 ext3 /dev/root rw"`},
		{"36 35 98:0 / /x rw - ext3 /dev/root rw extra\n", `mountinfo:1: want "- fstype source super-options" at the end of "36 35 98:0 / /x rw - ext3 /dev/root rw extra"`},
		{"x 35 98:0 / /x rw - ext3 /dev/root rw\n", `mountinfo:1: bad mount id "x"`},
		{"36 x 98:0 / /x rw - ext3 /dev/root rw\n", `mountinfo:1: bad parent id "x"`},
		{"36 35 fe:0 / /x rw - ext3 /dev/root rw\n", `mountinfo:1: bad major:minor "fe:0"`},
	} {
		_, err := ParseMountinfo(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseMountinfo(%q) err = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestParseTimers(t *testing.T) {
	timers, err := ParseTimers(bytes.NewReader(testdata(t, "timers")))
	if err != nil {
		t.Fatal(err)
	}
	want := []PosixTimer{
		{ID: 2, Signal: 34, SigevValue: 0xdead, Notify: "signal", ThreadID: true, NotifyPID: 8614, ClockID: 7},
		{ID: 1, Signal: 0, Notify: "none", NotifyPID: 8614, ClockID: 0},
		{ID: 0, Signal: 12, SigevValue: 0x1234, Notify: "signal", NotifyPID: 8614, ClockID: 1},
	}
	if !reflect.DeepEqual(timers, want) {
		t.Errorf("got  %+v\nwant %+v", timers, want)
	}
	if ts, err := ParseTimers(strings.NewReader("")); err != nil || ts != nil {
		t.Errorf("empty: %v, %v", ts, err)
	}
	for _, tc := range []struct{ in, want string }{
		{"signal: 1/0\n", `timers:1: "signal" before the first ID line`},
		{"ID: 0\nsignal: 14/0\nID: 1\n", `timers:3: timer 0 is incomplete`},
		{"ID: 0\nsignal: 14/0\nnotify: signal/pid.1\n", `timers:3: timer 0 is incomplete`},
		{"ID: 0\nsignal: 14\n", `timers:2: bad signal "14", want signo/value`},
		{"ID: 0\nsignal: 14/0\nnotify: signal/gid.1\n", `timers:3: bad notify "signal/gid.1", want how/pid.N or how/tid.N`},
		{"ID: 0\nsignal: 14/0\nnotify: signal/pid.1\nClockID: x\n", `timers:4: bad ClockID "x"`},
		{"ID: x\n", `timers:1: bad ID "x"`},
		{"ID 0\n", `timers:1: line "ID 0" has no ':'`},
	} {
		_, err := ParseTimers(strings.NewReader(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseTimers(%q) err = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

func TestParseAuxv(t *testing.T) {
	auxv, err := ParseAuxv(testdata(t, "auxv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(auxv) != 46 || auxv[44] != 0 {
		t.Errorf("%d words, last pair %v", len(auxv), auxv[len(auxv)-2:])
	}
	const atPagesz = 6
	if v, ok := AuxvValue(auxv, atPagesz); !ok || v != 4096 {
		t.Errorf("AT_PAGESZ = %d, %v", v, ok)
	}
	// Trailing bytes after AT_NULL are ignored; a vector without it is not.
	if _, err := ParseAuxv(append(testdata(t, "auxv"), make([]byte, 16)...)); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{make([]byte, 15), "auxv: 15 bytes is not a whole number of 16-byte pairs"},
		{[]byte{6, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0}, "auxv: no AT_NULL entry at the end"},
		{nil, "auxv: no AT_NULL entry at the end"},
	} {
		_, err := ParseAuxv(tc.in)
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseAuxv(%v) err = %v, want %s", tc.in, err, tc.want)
		}
	}
}

func TestLongLine(t *testing.T) {
	long := "00400000-00401000 r--p 00000000 fe:00 7 /" + strings.Repeat("x", maxLineLen) + "\n"
	_, err := ParseMaps(strings.NewReader("00400000-00401000 r--p 00000000 fe:00 7 /x\n" + long))
	if err == nil || err.Error() != "maps:2: line longer than 1048576 bytes" {
		t.Errorf("err = %v", err)
	}
}

// TestReadSelf runs the Read helpers on this process and a child.
func TestReadSelf(t *testing.T) {
	pid := os.Getpid()
	maps, err := ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := ReadSmaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) == 0 || len(smaps) == 0 {
		t.Errorf("%d maps, %d smaps VMAs", len(maps), len(smaps))
	}
	exe, _ := os.Executable()
	if !slices.ContainsFunc(maps, func(v VMA) bool { return v.Path == exe && v.Perms&PermExec != 0 }) {
		t.Errorf("no executable VMA of %s", exe)
	}
	st, err := ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	stat, err := ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pid != pid || stat.Pid != pid || stat.PPid != os.Getppid() || st.PPid != stat.PPid || st.Threads < 1 || stat.StartCode == 0 {
		t.Errorf("status %+v\nstat %+v", st, stat)
	}
	tids, err := ListTasks(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(tids) < 1 || !slices.Contains(tids, pid) {
		t.Errorf("tasks %v", tids)
	}
	tst, err := ReadTaskStat(pid, tids[len(tids)-1])
	if err != nil || tst.Pid != tids[len(tids)-1] {
		t.Errorf("task stat %+v, %v", tst, err)
	}
	if _, err := ReadTaskStatus(pid, pid); err != nil {
		t.Error(err)
	}

	f, err := os.Open("testdata/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := ReadFdinfo(pid, int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Flags&0o3 != 0 || fi.Pos != 0 {
		t.Errorf("fdinfo %+v", fi)
	}
	if _, err := ReadMountinfo(pid); err != nil {
		t.Error(err)
	}
	if _, err := ReadTimers(pid); err != nil {
		t.Error(err)
	}
	auxv, err := ReadAuxv(pid)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := AuxvValue(auxv, 6); !ok || v != uint64(os.Getpagesize()) {
		t.Errorf("AT_PAGESZ = %d", v)
	}

	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	children, err := ReadAllChildren(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(children, cmd.Process.Pid) {
		t.Errorf("children %v lack %d", children, cmd.Process.Pid)
	}

	_, err = ReadStat(1 << 30)
	if !os.IsNotExist(err) {
		t.Errorf("stat of a missing pid: %v", err)
	}
}

// TestReadErrorNamesFile checks that Read helpers put the real path in
// parse errors.
func TestReadErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	old := Root
	Root = dir
	defer func() { Root = old }()
	if err := os.MkdirAll(filepath.Join(dir, "5"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "5", "maps"), []byte("00400000-00401000 r--p 00000000 fe:00 7 /x\nbad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadMaps(5)
	if want := dir + `/5/maps:2: missing address range in maps line "bad"`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	if err := os.WriteFile(filepath.Join(dir, "5", "stat"), []byte("5 (x) R\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadStat(5)
	if want := dir + `/5/stat: 3 fields, want at least 52`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

// TestReadFdinfoAt: through the fdinfo directory, the same as by path;
// a closed fd is os.ErrNotExist naming its path.
func TestReadFdinfoAt(t *testing.T) {
	pid := os.Getpid()
	f, err := os.CreateTemp(t.TempDir(), "at")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("0123456789")
	dir, err := unix.Open(Path(pid, "fdinfo"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dir)
	fd := int(f.Fd())
	want, err := ReadFdinfo(pid, fd)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFdinfoAt(dir, pid, fd)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pos != 10 || got.Pos != want.Pos || got.Flags != want.Flags || got.MntID != want.MntID || got.Ino != want.Ino {
		t.Errorf("ReadFdinfoAt %+v, ReadFdinfo %+v", got, want)
	}
	_, err = ReadFdinfoAt(dir, pid, 99999)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), Path(pid, "fdinfo", "99999")) {
		t.Errorf("closed fd: %v", err)
	}
}
