package images

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeImageJSON writes the image name into dir from its JSON form.
func writeImageJSON(t *testing.T, dir, name, js string) {
	t.Helper()
	var b bytes.Buffer
	if err := EncodeJSON(strings.NewReader(js), &b, name); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

const (
	fownJSON = `{"uid":0,"euid":0,"signum":0,"pid_type":0,"pid":0}`
	mmHead   = `"mm_start_code":0,"mm_end_code":0,"mm_start_data":0,"mm_end_data":0,"mm_start_stack":0,` +
		`"mm_start_brk":0,"mm_brk":0,"mm_arg_start":0,"mm_arg_end":0,"mm_env_start":0,"mm_env_end":0`
)

func regJSON(id int, name string) string {
	return fmt.Sprintf(`{"type":"REG","id":%d,"reg":{"id":%d,"flags":0,"pos":0,"fown":%s,"name":%q}}`, id, id, fownJSON, name)
}

func vmaJSON(start, end, pgoff, shmid uint64, prot, flags, status uint32) string {
	return fmt.Sprintf(`{"start":%d,"end":%d,"pgoff":%d,"shmid":%d,"prot":%d,"flags":%d,"status":%d,"fd":-1}`,
		start, end, pgoff, shmid, prot, flags, status)
}

func pagemapJSON(entries ...string) string {
	return `{"magic":"PAGEMAP","entries":[{"pages_id":1}` + strings.Join(append([]string{""}, entries...), ",") + `]}`
}

// exploreDir builds a small dump by hand: a tree of four tasks out of
// pstree order, fds out of numeric order and of every kind the views
// name, mappings of every kind, and pagemap entries that share or span
// mappings.
func exploreDir(t *testing.T) string {
	dir := t.TempDir()
	writeImageJSON(t, dir, "inventory.img", `{"magic":"INVENTORY","entries":[{"img_version":2,"fdinfo_per_id":true}]}`)
	// 103 is a child of 101 but listed after 102.
	writeImageJSON(t, dir, "pstree.img", `{"magic":"PSTREE","entries":[
		{"pid":100,"ppid":0,"pgid":100,"sid":100,"threads":[100,104]},
		{"pid":101,"ppid":100,"pgid":100,"sid":100,"threads":[101]},
		{"pid":102,"ppid":100,"pgid":102,"sid":100,"threads":[102]},
		{"pid":103,"ppid":101,"pgid":100,"sid":100,"threads":[103]}]}`)
	abstract := base64.StdEncoding.EncodeToString([]byte("\x00gockpt/abstract"))
	writeImageJSON(t, dir, "files.img", `{"magic":"FILES","entries":[`+strings.Join([]string{
		regJSON(1, "/usr/bin/server"), regJSON(2, "/srv/data.db"), regJSON(3, "/dev/null"),
		fmt.Sprintf(`{"type":"PIPE","id":4,"pipe":{"id":4,"pipe_id":5001,"flags":0,"fown":%s}}`, fownJSON),
		fmt.Sprintf(`{"type":"UNIXSK","id":5,"usk":{"id":5,"ino":7001,"type":1,"state":1,"flags":0,"uflags":0,"backlog":0,"peer":7002,"fown":%s,`+
			`"opts":{"so_sndbuf":0,"so_rcvbuf":0,"so_snd_tmo_sec":0,"so_snd_tmo_usec":0,"so_rcv_tmo_sec":0,"so_rcv_tmo_usec":0},"name":%q}}`, fownJSON, abstract),
		fmt.Sprintf(`{"type":"EVENTFD","id":6,"efd":{"id":6,"flags":0,"fown":%s,"counter":3}}`, fownJSON),
		regJSON(7, "/srv"), regJSON(8, "/"),
	}, ",")+`]}`)
	comms := map[int]string{100: "server", 101: "worker", 102: "logger", 103: "helper"}
	for pid := 100; pid <= 103; pid++ {
		writeImageJSON(t, dir, CoreFile(pid), fmt.Sprintf(`{"magic":"CORE","entries":[{"mtype":"X86_64",`+
			`"tc":{"task_state":1,"exit_code":0,"personality":0,"flags":0,"blk_sigset":0,"comm":%q}}]}`, comms[pid]))
		filesID := 20
		if pid == 100 {
			filesID = 10
		}
		writeImageJSON(t, dir, IDsFile(pid), fmt.Sprintf(`{"magic":"IDS","entries":[{"vm_id":%d,"files_id":%d,"fs_id":1,"sighand_id":%d}]}`, pid, filesID, pid))
		writeImageJSON(t, dir, FSFile(pid), `{"magic":"FS","entries":[{"cwd_id":7,"root_id":8}]}`)
	}
	// The root's fds, out of order; fd 9 names a file files.img lacks.
	writeImageJSON(t, dir, "fdinfo-10.img", `{"magic":"FDINFO","entries":[
		{"id":5,"flags":0,"type":"UNIXSK","fd":7},
		{"id":3,"flags":0,"type":"REG","fd":0},
		{"id":6,"flags":0,"type":"EVENTFD","fd":12},
		{"id":4,"flags":0,"type":"PIPE","fd":3},
		{"id":99,"flags":0,"type":"REG","fd":9},
		{"id":4,"flags":0,"type":"PIPE","fd":4},
		{"id":3,"flags":0,"type":"REG","fd":2},
		{"id":3,"flags":0,"type":"REG","fd":1}]}`)
	writeImageJSON(t, dir, "fdinfo-20.img", `{"magic":"FDINFO","entries":[{"id":3,"flags":0,"type":"REG","fd":0}]}`)

	const (
		r, rw, rx, x          = 1, 3, 5, 4
		private, shared, anon = 0x2, 0x1, 0x20
		growsdown             = 0x100
		regular, filePrivate  = 1 << 0, 1 << 6
		fileShared, anonShare = 1 << 7, 1 << 8
		anonPrivate, heap     = 1 << 9, 1 << 5
		sysvipc, vvar, vdso   = 1 << 10, 1 << 12, 1 << 3
		vsyscall              = 1 << 2
	)
	vmas := []string{
		vmaJSON(0x400000, 0x401000, 0, 1, rx, private, regular|filePrivate),
		vmaJSON(0x401000, 0x403000, 0x1000, 1, rw, private, regular|filePrivate),
		vmaJSON(0x600000, 0x621000, 0, 0, rw, private|anon, regular|heap|anonPrivate),
		vmaJSON(0x7f0000000000, 0x7f0000004000, 0x2000, 2, rw, shared, regular|fileShared),
		vmaJSON(0x7f0000004000, 0x7f0000008000, 0, 0x9999, rw, shared|anon, regular|anonShare),
		vmaJSON(0x7f0000008000, 0x7f0000010000, 0, 0, rw, private|anon, regular|anonPrivate),
		vmaJSON(0x7f0000010000, 0x7f0000012000, 0, 0x42, rw, shared|anon, regular|sysvipc),
		vmaJSON(0x7f0000012000, 0x7f0000013000, 0, 0, r, private|anon, regular|vvar),
		vmaJSON(0x7f0000013000, 0x7f0000015000, 0, 0, rx, private|anon, regular|vdso),
		vmaJSON(0x7ffc00000000, 0x7ffc00021000, 0, 0, rw, private|anon|growsdown, regular|anonPrivate),
		vmaJSON(0xffffffffff600000, 0xffffffffff601000, 0, 0, x, private|anon, vsyscall),
	}
	writeImageJSON(t, dir, MMFile(100), `{"magic":"MM","entries":[{`+mmHead+`,"exe_file_id":1,"vmas":[`+strings.Join(vmas, ",")+`]}]}`)
	// 101 maps the root's shared memory (numbered 1 already) and its own.
	writeImageJSON(t, dir, MMFile(101), `{"magic":"MM","entries":[{`+mmHead+`,"exe_file_id":1,"vmas":[`+
		vmaJSON(0x7f0000004000, 0x7f0000008000, 0, 0x9999, rw, shared|anon, regular|anonShare)+","+
		vmaJSON(0x7f0000020000, 0x7f0000021000, 0, 0x7777, r, shared|anon, regular|anonShare)+`]}]}`)
	for _, pid := range []int{102, 103} {
		writeImageJSON(t, dir, MMFile(pid), `{"magic":"MM","entries":[{`+mmHead+`,"exe_file_id":1}]}`)
	}
	writeImageJSON(t, dir, PagemapFile(100), pagemapJSON(
		`{"vaddr":4194304,"compat_nr_pages":0,"flags":4,"nr_pages":1}`,
		`{"vaddr":4198400,"compat_nr_pages":0,"flags":4,"nr_pages":2}`,
		`{"vaddr":6291456,"compat_nr_pages":0,"flags":4,"nr_pages":3}`,
		// An old entry: compat_nr_pages only, no flags.
		`{"vaddr":6303744,"compat_nr_pages":1}`,
		// Spans the shared and the private anonymous mappings.
		`{"vaddr":139637976743936,"compat_nr_pages":0,"flags":4,"nr_pages":12}`,
		`{"vaddr":139637976776704,"compat_nr_pages":0,"flags":1,"nr_pages":2}`,
		`{"vaddr":140720308617216,"compat_nr_pages":0,"flags":6,"nr_pages":1}`))
	writeImageJSON(t, dir, PagemapFile(101), pagemapJSON(`{"vaddr":139637976743936,"compat_nr_pages":0,"flags":4,"nr_pages":4}`))
	for _, pid := range []int{102, 103} {
		writeImageJSON(t, dir, PagemapFile(pid), pagemapJSON())
	}
	return dir
}

func explore(t *testing.T, dir, view string) string {
	t.Helper()
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Explore(d, view, &b); err != nil {
		t.Fatalf("x %s: %v", view, err)
	}
	return b.String()
}

func TestExplore(t *testing.T) {
	dir := exploreDir(t)
	for _, c := range []struct{ view, want string }{
		{"ps", `    PID   PGID    SID   COMM
    100    100    100   server
    101    100    100       worker
    103    100    100           helper
    102    102    100       logger
`},
		{"fds", `100
	      0: /dev/null
	      1: /dev/null
	      2: /dev/null
	      3: pipe[5001]
	      4: pipe[5001]
	      7: unix[7001 (7002) @gockpt/abstract]
	      9: unknown path
	     12: EVENTFD.6
	    cwd: /srv
	   root: /
101
	      0: /dev/null
	    cwd: /srv
	   root: /
102
	      0: /dev/null
	    cwd: /srv
	   root: /
103
	      0: /dev/null
	    cwd: /srv
	   root: /
`},
		{"mems", `100
	exe                                     /usr/bin/server
	00400000-00401000                   r-x /usr/bin/server
	00401000-00403000                   rw- /usr/bin/server + 0x1000
	00600000-00621000                   rw- [heap]
	7f0000000000-7f0000004000           rw- /srv/data.db + 0x2000 (s)
	7f0000004000-7f0000008000           rw- shmem[1]
	7f0000008000-7f0000010000           rw-
	7f0000010000-7f0000012000           rw- ips[2]
	7f0000012000-7f0000013000           r-- [vvar]
	7f0000013000-7f0000015000           r-x [vdso]
	7ffc00000000-7ffc00021000           rw- [stack?]
	ffffffffff600000-ffffffffff601000   --x [vsyscall] *
101
	exe                                     /usr/bin/server
	7f0000004000-7f0000008000           rw- shmem[1]
	7f0000020000-7f0000021000           r-- shmem[3]
102
	exe                                     /usr/bin/server
103
	exe                                     /usr/bin/server
`},
		{"rss", `100
	400000 / 1              00400000 / 1        /usr/bin/server
	401000 / 2              00401000 / 2        /usr/bin/server
	600000 / 3              00600000 / 33
	603000 / 1              ~
	7f0000004000 / 12       7f0000004000 / 4
	                        7f0000008000 / 8
	7f000000c000 / 2        ~
	7ffc00020000 / 1        7ffc00000000 / 33
101
	7f0000004000 / 4        7f0000004000 / 4
102
103
`},
	} {
		if got := explore(t, dir, c.view); got != c.want {
			t.Errorf("x %s:\n%s\nwant:\n%s", c.view, got, c.want)
		}
	}
}

// TestExploreFixture reads CRIU 4.2's images of counter.c.
func TestExploreFixture(t *testing.T) {
	dir := fixture(t)
	for _, c := range []struct{ view, want string }{
		{"ps", `    PID   PGID    SID   COMM
  12833  12833  12833   counter
`},
		{"fds", `12833
	      0: /dev/null
	      1: /dev/null
	      2: /dev/null
	      3: /tmp/gockpt-testdata/counter.log
	     10: /dev/null
	    251: pipe[746767]
	    cwd: /tmp/gockpt-testdata
	   root: /
`},
		{"mems", `12833
	exe                                     /tmp/gockpt-testdata/counter
	55d73f654000-55d73f655000           r-- /tmp/gockpt-testdata/counter
	55d73f655000-55d73f656000           r-x /tmp/gockpt-testdata/counter + 0x1000
	55d73f656000-55d73f657000           r-- /tmp/gockpt-testdata/counter + 0x2000
	55d73f657000-55d73f658000           r-- /tmp/gockpt-testdata/counter + 0x2000
	55d73f658000-55d73f659000           rw- /tmp/gockpt-testdata/counter + 0x3000
	55d77ed3e000-55d77ed5f000           rw- [heap]
	7f523ffff000-7f5240203000           rw-
	7f5240203000-7f5240229000           r-- /usr/lib/x86_64-linux-gnu/libc.so.6
	7f5240229000-7f524037f000           r-x /usr/lib/x86_64-linux-gnu/libc.so.6 + 0x26000
	7f524037f000-7f52403d2000           r-- /usr/lib/x86_64-linux-gnu/libc.so.6 + 0x17c000
	7f52403d2000-7f52403d6000           r-- /usr/lib/x86_64-linux-gnu/libc.so.6 + 0x1cf000
	7f52403d6000-7f52403d8000           rw- /usr/lib/x86_64-linux-gnu/libc.so.6 + 0x1d3000
	7f52403d8000-7f52403e5000           rw-
	7f52403ee000-7f52403f0000           rw-
	7f52403f0000-7f52403f6000           r-- [vvar]
	7f52403f6000-7f52403f8000           r-x [vdso]
	7f52403f8000-7f52403f9000           r-- /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	7f52403f9000-7f524041f000           r-x /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 + 0x1000
	7f524041f000-7f5240429000           r-- /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 + 0x27000
	7f5240429000-7f524042b000           r-- /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 + 0x31000
	7f524042b000-7f524042d000           rw- /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 + 0x33000
	7ffdafc89000-7ffdafcaa000           rw- [stack?]
	ffffffffff600000-ffffffffff601000   --x [vsyscall] *
`},
		{"rss", `12833
	55d73f655000 / 1        55d73f655000 / 1        /tmp/gockpt-testdata/counter
	55d73f657000 / 2        55d73f657000 / 1        /tmp/gockpt-testdata/counter
	                        55d73f658000 / 1        /tmp/gockpt-testdata/counter
	55d77ed3e000 / 2        55d77ed3e000 / 33
	7f523ffff000 / 1        7f523ffff000 / 516
	7f5240100000 / 253      ~
	7f52401fd000 / 5        ~
	7f52403d2000 / 6        7f52403d2000 / 4        /usr/lib/x86_64-linux-gnu/libc.so.6
	                        7f52403d6000 / 2        /usr/lib/x86_64-linux-gnu/libc.so.6
	7f52403d8000 / 1        7f52403d8000 / 13
	7f52403dc000 / 3        ~
	7f52403e4000 / 1        ~
	7f52403ee000 / 1        7f52403ee000 / 2
	7f52403f6000 / 2        7f52403f6000 / 2
	7f5240429000 / 4        7f5240429000 / 2        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	                        7f524042b000 / 2        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	7ffdafca6000 / 4        7ffdafc89000 / 33
`},
	} {
		if got := explore(t, dir, c.view); got != c.want {
			t.Errorf("x %s:\n%s\nwant:\n%s", c.view, got, c.want)
		}
	}
}

func TestExploreErrors(t *testing.T) {
	empty := t.TempDir()
	preDump := t.TempDir()
	writeImageJSON(t, preDump, "inventory.img", `{"magic":"INVENTORY","entries":[{"img_version":2,"pre_dump_mode":1}]}`)
	writeImageJSON(t, preDump, "pstree.img", `{"magic":"PSTREE","entries":[{"pid":100,"ppid":0,"pgid":100,"sid":100,"threads":[100]}]}`)
	partial := exploreDir(t)
	os.Remove(filepath.Join(partial, MMFile(102)))
	for _, c := range []struct{ dir, view, want string }{
		{empty, "ps", "no pstree.img in " + empty + ": not a gockpt or CRIU checkpoint"},
		{preDump, "ps", "task 100: no core-100.img in " + preDump + ": it holds a pre-dump, which saves memory only; look at the final dump's directory"},
		{preDump, "fds", "task 100: no ids-100.img in " + preDump + ": it holds a pre-dump, which saves memory only; look at the final dump's directory"},
		{partial, "mems", "task 102: no mm-102.img in " + partial + ": the dump is incomplete"},
		{partial, "top", `unknown view "top": use one of ps, fds, mems, rss`},
	} {
		d, err := OpenDir(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = Explore(d, c.view, &out)
		if err == nil || err.Error() != c.want {
			t.Errorf("x %s %s: error %v, want %q", c.dir, c.view, err, c.want)
		}
		if out.Len() != 0 {
			t.Errorf("x %s %s printed %q before failing", c.dir, c.view, out.String())
		}
	}
}

// TestSummaryFDOrder: image show lists fds in numeric order, whatever
// order fdinfo holds them in.
func TestSummaryFDOrder(t *testing.T) {
	d, err := OpenDir(exploreDir(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(d, testDescribe)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	want := `  fds: 8
      0 REG      /dev/null
      1 REG      /dev/null
      2 REG      /dev/null
      3 PIPE     pipe:[5001]
      4 PIPE     pipe:[5001]
      7 UNIXSK   unix STREAM ino 7001 peer 7002 "@gockpt/abstract"
      9 REG      (not in files.img)
     12 EVENTFD  eventfd counter 3
`
	if !strings.Contains(out.String(), want) {
		t.Errorf("show output lacks\n%s\nin\n%s", want, out.String())
	}
}
