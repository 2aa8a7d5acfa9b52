package dump

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/testproc"
)

// holder is a holdfd process keeping one object.
type holder struct {
	*testproc.Proc
	dir  string
	info map[string]string
}

func startHolder(t *testing.T, kind string, args ...string) *holder {
	t.Helper()
	bin := testproc.BuildC(t, "testdata/holdfd.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, append([]string{dir, kind}, args...)...)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	h := &holder{Proc: p, dir: dir, info: map[string]string{}}
	b, _ := os.ReadFile(filepath.Join(dir, "info"))
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			h.info[k] = v
		}
	}
	return h
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// vmaOf is the maps range holding addr (hexadecimal), as refusals print it.
func vmaOf(t *testing.T, pid int, addr string) string {
	t.Helper()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	for _, l := range strings.Split(string(b), "\n") {
		r, _, _ := strings.Cut(l, " ")
		lo, hi, ok := strings.Cut(r, "-")
		if ok && lo == addr {
			return fmt.Sprintf("VMA 0x%s-0x%s", lo, hi)
		}
	}
	t.Fatalf("task %d has no area at %s", pid, addr)
	return ""
}

// TestRefusals: what restore could not bring back exactly is refused, by
// the inspection before the tree is touched, naming the task, the fd or
// area, and the object as ss, lsof and /proc name it, with what to do.
// The tree runs on untouched, and no images directory is made.
func TestRefusals(t *testing.T) {
	sockDir := t.TempDir()
	extPath := filepath.Join(sockDir, "ext.sock")
	ln, err := net.Listen("unix", extPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()

	type tc struct {
		kind string
		args []string
		want func(h *holder) string
	}
	who := func(h *holder, where string) string {
		return fmt.Sprintf("task %d (%s) %s: ", h.Pid, comm(h.Pid), where)
	}
	cases := []tc{
		{"unix-pair", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("unix dgram (unbound) peer fd 4 of task %d: gockpt does not dump unix sockets; close the socket before dumping", h.Pid)
		}},
		{"unix-abstract", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("unix seqpacket @gockpt-test-%d listening: gockpt does not dump unix sockets; close the socket before dumping", h.Pid)
		}},
		{"unix-path-conn", nil, func(h *holder) string {
			return who(h, "fd 4") + fmt.Sprintf("unix stream (unbound) peer fd 5 of task %d: gockpt does not dump unix sockets; close the socket before dumping", h.Pid)
		}},
		{"unix-ext", []string{extPath}, func(h *holder) string {
			c := <-accepted
			t.Cleanup(func() { c.Close() })
			f, _ := c.(*net.UnixConn).File()
			defer f.Close()
			var st syscall.Stat_t
			syscall.Fstat(int(f.Fd()), &st)
			return who(h, "fd 3") + fmt.Sprintf("unix stream (unbound) peer %s (inode %d) outside the dumped tree: gockpt does not dump unix sockets (CRIU: --ext-unix-sk); close the socket before dumping", extPath, st.Ino)
		}},
		{"tcp-listen", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("TCP 127.0.0.1:%s listening: gockpt does not dump TCP sockets; close the socket before dumping (stop listening, or end the connection)", h.info["port"])
		}},
		{"tcp6-listen", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("TCP [::1]:%s listening: gockpt does not dump TCP sockets; close the socket before dumping (stop listening, or end the connection)", h.info["port"])
		}},
		{"tcp-est", nil, func(h *holder) string {
			return who(h, "fd 4") + fmt.Sprintf("TCP 127.0.0.1:%s -> 127.0.0.1:%s: gockpt does not dump TCP sockets (CRIU: --tcp-established); close the socket before dumping (stop listening, or end the connection)", h.info["local"], h.info["port"])
		}},
		{"udp", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("UDP 127.0.0.1:%s: gockpt does not dump UDP sockets; close the socket before dumping", h.info["port"])
		}},
		{"netlink", nil, func(h *holder) string {
			return who(h, "fd 3") + "netlink socket (NETLINK_ROUTE): gockpt does not dump netlink, packet and raw sockets; close the socket before dumping"
		}},
		{"memfd-map", nil, func(h *holder) string {
			return who(h, vmaOf(t, h.Pid, h.info["addr"])) + "memfd:cache (fd 3): gockpt does not dump shared mappings of memfd files; unmap the memfd before dumping (a memfd held only as an fd is dumped)"
		}},
		{"memfd-hugetlb", nil, func(h *holder) string {
			return who(h, "fd 3") + "memfd:huge (MFD_HUGETLB): gockpt does not dump shared hugetlb memory and hugetlbfs files; map the huge pages MAP_PRIVATE|MAP_ANONYMOUS, or use ordinary pages instead of MAP_SHARED|MAP_HUGETLB or hugetlbfs"
		}},
		{"shared-anon", nil, func(h *holder) string {
			return who(h, vmaOf(t, h.Pid, h.info["addr"])) + "shared anonymous memory: gockpt does not dump shared anonymous memory; map a file (for example in /dev/shm) with MAP_SHARED instead of MAP_SHARED|MAP_ANONYMOUS"
		}},
		{"sysv-shm", nil, func(h *holder) string {
			return who(h, vmaOf(t, h.Pid, h.info["addr"])) + fmt.Sprintf("System V shared memory segment (key 0x00000000, shmid %s): gockpt does not dump System V shared memory; detach the segment (shmdt) before dumping", h.info["shmid"])
		}},
		{"flock", nil, func(h *holder) string {
			return who(h, "fd 3") + h.dir + "/locked: an exclusive flock lock: gockpt does not dump file locks (CRIU: --file-locks); release the lock before dumping"
		}},
		{"posix-lock", nil, func(h *holder) string {
			return who(h, "fd 3") + h.dir + "/locked: a POSIX write lock on bytes 2-5: gockpt does not dump file locks (CRIU: --file-locks); release the lock before dumping"
		}},
		{"ofd-lock", nil, func(h *holder) string {
			return who(h, "fd 3") + h.dir + "/locked: an OFD read lock on the whole file: gockpt does not dump file locks (CRIU: --file-locks); release the lock before dumping"
		}},
		{"lease", nil, func(h *holder) string {
			return who(h, "fd 3") + h.dir + "/locked: a read lease: gockpt does not dump file leases (CRIU: --file-locks); release the lease (fcntl F_SETLEASE, F_UNLCK) before dumping"
		}},
		{"sigio-parent", nil, func(h *holder) string {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", h.Pid))
			return who(h, "fd 3") + fmt.Sprintf("%s: SIGIO goes to process %d, outside the dumped tree: gockpt does not dump SIGIO owners outside the tree; point F_SETOWN at a task of the tree, or clear it (F_SETOWN 0), before dumping", link, os.Getpid())
		}},
		{"epoll-closed", nil, func(h *holder) string {
			if c, err := strconv.Atoi(h.info["child"]); err == nil && c > 0 {
				t.Cleanup(func() { syscall.Kill(c, syscall.SIGKILL) })
			}
			return who(h, "fd 3") + "anon_inode:[eventpoll]: it watches a file added as fd 4 that no fd of the task holds any more: gockpt does not dump epoll sets watching files the task closed; keep an fd on each watched file open in the task holding the epoll set, or remove the file from the set (epoll_ctl EPOLL_CTL_DEL) before closing it"
		}},
		{"files-grandchild", nil, func(h *holder) string {
			a, _ := strconv.Atoi(h.info["child"])
			b, _ := strconv.Atoi(h.info["grandchild"])
			for _, p := range []int{a, b} {
				if p > 0 {
					t.Cleanup(func() { syscall.Kill(p, syscall.SIGKILL) })
				}
			}
			return fmt.Sprintf("task %d (%s): its fd table, shared with task %d (%s) but not with its parent task %d (%s): gockpt does not dump fd tables shared other than by a parent and its CLONE_FILES children; let each task share its fd table with its parent only (clone CLONE_FILES from the task whose table it is), or unshare it (unshare CLONE_FILES) before dumping",
				b, comm(b), h.Pid, comm(h.Pid), a, comm(a))
		}},
		{"pty", nil, func(h *holder) string {
			return who(h, "fd 3") + "/dev/ptmx: gockpt does not dump terminals (CRIU: --shell-job); start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)"
		}},
		{"pidfd", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("pidfd of PID %d (%s): gockpt does not dump pidfds of processes outside the dumped tree; close it before dumping, or dump the tree that contains PID %d", os.Getpid(), comm(os.Getpid()), os.Getpid())
		}},
		{"pidfd-thread", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("pidfd of thread %d (%s): gockpt does not dump pidfds of processes outside the dumped tree; close it before dumping, or dump the tree that contains thread %d", os.Getpid(), comm(os.Getpid()), os.Getpid())
		}},
		{"timerfd-cancel", nil, func(h *holder) string {
			return who(h, "fd 3") + "anon_inode:[timerfd]: set with TFD_TIMER_CANCEL_ON_SET, 1 unread ticks (expirations or clock changes): gockpt does not dump timerfds set with TFD_TIMER_CANCEL_ON_SET that have unread expirations; read the timerfd before dumping (a clock change and an expiration look the same from outside)"
		}},
		{"inotify", nil, func(h *holder) string {
			return who(h, "fd 3") + "anon_inode:inotify: 32 bytes of events not read: gockpt does not dump inotify instances with unread events; read the pending events (until read(2) fails with EAGAIN) before dumping"
		}},
		{"deleted", []string{"2000000"}, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("deleted file %s/gone is 2000000 bytes, over the ghost limit of 1048576 bytes: raise it with --ghost-limit 2000000 or close the file before dumping", h.dir)
		}},
	}
	// A mapping of a deleted file is kept as a ghost, within the limit.
	cases = append(cases, tc{"deleted-map", nil, func(h *holder) string {
		return who(h, vmaOf(t, h.Pid, h.info["addr"])) + h.dir + "/mapped (deleted) is 4 bytes, over the ghost limit of 2 bytes: raise it with --ghost-limit 4 or unmap the file before dumping"
	}})
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			h := startHolder(t, c.kind, c.args...)
			want := c.want(h)
			mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", h.Pid))
			img := filepath.Join(t.TempDir(), "img")
			limit := int64(0)
			if c.kind == "deleted-map" {
				limit = 2
			}
			_, err := Run(Options{Pid: h.Pid, ImagesDir: img, LeaveRunning: true, GhostLimit: limit})
			if err == nil || err.Error() != want {
				t.Fatalf("error\n %v\nwant\n %s", err, want)
			}
			if _, err := os.Lstat(img); err == nil {
				t.Errorf("a dump refused before touching the tree made %s", img)
			}
			expectUntouched(t, h.Pid, mapsBefore)
		})
	}
}

// expectUntouched: a refused dump leaves the task alive, untraced, with the
// same memory areas.
func expectUntouched(t *testing.T, pid int, mapsBefore []byte) {
	t.Helper()
	if !testproc.Alive(pid) {
		t.Fatalf("task %d died after a refused dump", pid)
	}
	mapsAfter, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if !bytes.Equal(mapsBefore, mapsAfter) {
		t.Fatalf("maps of %d changed by a refused dump", pid)
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if !strings.Contains(string(st), "TracerPid:\t0\n") {
		t.Fatalf("task %d still traced after a refused dump", pid)
	}
}

// TestRefusalsOfTasks: what can never be dumped, and a task someone else
// traces, named correctly.
func TestRefusalsOfTasks(t *testing.T) {
	netns := testproc.Start(t, "unshare", "--net", "sleep", "1000")
	traced := testproc.Start(t, "sleep", "1000")
	tr := ptrace.NewTracer()
	defer tr.Close()
	time.Sleep(20 * time.Millisecond)
	te, err := tr.Seize(traced.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer te.Detach()
	nsOf := func(pid int, ns string) string {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		return l
	}
	cases := []struct {
		name string
		pid  int
		want string
	}{
		{"pid 1", 1, "PID 1 cannot be dumped: it is the init process of this PID namespace and cannot be traced; dump one of its children, or run the tree in its own PID namespace"},
		{"missing", 1 << 30, "no process with PID 1073741824: check the PID (ps -p 1073741824)"},
		{"kernel thread", 2, "PID 2 (kthreadd) is a kernel thread: kernel threads cannot be dumped; give the PID of a user process"},
		{"self", os.Getpid(), fmt.Sprintf("PID %d is gockpt itself or one of its ancestors: run gockpt from outside the tree you dump (e.g. from another shell)", os.Getpid())},
		{"traced", traced.Pid, fmt.Sprintf("task %d (sleep) is already traced by PID %d (%s): detach that debugger or tracer (or stop it), then dump again", traced.Pid, os.Getpid(), comm(os.Getpid()))},
		{"namespace", netns.Pid, fmt.Sprintf("task %d (sleep): its own net namespace %s (gockpt's is %s): gockpt does not dump namespaces other than UTS; run gockpt inside that namespace (nsenter --target %d --net) or dump a process that shares gockpt's",
			netns.Pid, nsOf(netns.Pid, "net"), nsOf(os.Getpid(), "net"), netns.Pid)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(Options{Pid: c.pid, ImagesDir: filepath.Join(t.TempDir(), "img"), LeaveRunning: true})
			if err == nil || err.Error() != c.want {
				t.Fatalf("error\n %v\nwant\n %s", err, c.want)
			}
			if c.name == "namespace" || c.name == "traced" {
				if !testproc.Alive(c.pid) {
					t.Fatalf("task %d died after a refused dump", c.pid)
				}
			}
		})
	}
}

// TestRefusedDeletedPaths: a deleted executable is refused before the
// tree is touched (a deleted working directory is kept: task_cwd_deleted).
func TestRefusedDeletedPaths(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "sleeper")
	b, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	p := testproc.Start(t, exe, "1000")
	time.Sleep(50 * time.Millisecond)
	os.Remove(exe)
	for _, c := range []struct {
		pid  int
		want string
	}{
		{p.Pid, fmt.Sprintf("task %d (sleeper): its executable %s (deleted): gockpt does not dump deleted executables; put the executable back where it was before dumping (restore needs it)", p.Pid, exe)},
	} {
		img := filepath.Join(t.TempDir(), "img")
		if _, err := Run(Options{Pid: c.pid, ImagesDir: img, LeaveRunning: true}); err == nil || err.Error() != c.want {
			t.Errorf("error\n %v\nwant\n %s", err, c.want)
		}
		if !testproc.Alive(c.pid) {
			t.Errorf("task %d died after a refused dump", c.pid)
		}
	}
}
