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

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/testproc"
)

// fullPort is the port of fullListener.
var fullPort string

// fullListener listens on 127.0.0.1 with a backlog of one, filled at once:
// the kernel drops the next connection's SYNs, so its client stays in
// SYN-SENT.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	fullPort = strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
	c, err := net.Dial("tcp", "127.0.0.1:"+fullPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return fullPort
}

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
	dgPath := filepath.Join(sockDir, "dg.sock")
	dg, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dgPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer dg.Close()
	var dgIno uint64
	if f, err := dg.File(); err == nil {
		var st syscall.Stat_t
		syscall.Fstat(int(f.Fd()), &st)
		dgIno = st.Ino
		f.Close()
	}
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
		{"unix-ext", []string{extPath}, func(h *holder) string {
			c := <-accepted
			t.Cleanup(func() { c.Close() })
			f, _ := c.(*net.UnixConn).File()
			var st syscall.Stat_t
			syscall.Fstat(int(f.Fd()), &st)
			f.Close()
			return who(h, "fd 3") + fmt.Sprintf("unix stream (unbound) peer %s inode %d (fd %d of task %d (%s)) outside the dumped tree: gockpt does not dump unix sockets connected outside the dumped tree; dump the tree that holds the peer too, or close the connection before dumping (one end of a connection cannot be restored without the other)",
				extPath, st.Ino, ownSocketFd(t, st.Ino), os.Getpid(), comm(os.Getpid()))
		}},
		{"unix-dgram-ext", []string{dgPath}, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("unix dgram (unbound) peer %s inode %d (fd %d of task %d (%s)) outside the dumped tree: gockpt does not dump unix sockets connected outside the dumped tree (CRIU: --ext-unix-sk); dump with --ext-unix-sk to connect it to %s again at restore (it must exist then), or dump the tree that holds the peer too",
				dgPath, dgIno, ownSocketFd(t, dgIno), os.Getpid(), comm(os.Getpid()), dgPath)
		}},
		{"unix-listen", nil, func(h *holder) string {
			c, err := net.Dial("unix", filepath.Join(h.dir, "listen"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			f, _ := c.(*net.UnixConn).File()
			var st syscall.Stat_t
			syscall.Fstat(int(f.Fd()), &st)
			f.Close()
			return who(h, "fd 3") + fmt.Sprintf("unix stream %s/listen listening: a connection from socket inode %d (fd %d of task %d (%s)), outside the dumped tree, waits in its backlog: gockpt does not dump unix connections waiting in a backlog that restore cannot make again; let the listener accept the connection, or dump the client's tree too, before dumping",
				h.dir, st.Ino, ownSocketFd(t, st.Ino), os.Getpid(), comm(os.Getpid()))
		}},
		{"tcp-pending", nil, func(h *holder) string {
			// Every refusal of the task, one per kind: the client too.
			return who(h, "fd 3") + fmt.Sprintf("TCP 127.0.0.1:%s listening: 1 connection waits to be accepted: gockpt does not dump TCP connections waiting to be accepted (CRIU: --skip-in-flight); let the listener accept them before dumping, or leave them out with --skip-in-flight (their clients see them reset)\n", h.info["port"]) +
				who(h, "fd 4") + fmt.Sprintf("TCP 127.0.0.1:%s -> 127.0.0.1:%s: gockpt dumps established TCP connections only with --tcp-established; end the connection before dumping, or dump and restore with --tcp-established", h.info["local"], h.info["port"])
		}},
		{"tcp-synsent", []string{fullListener(t)}, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("TCP 127.0.0.1:%s -> 127.0.0.1:%s SYN-SENT: gockpt does not dump TCP connections being opened (SYN-SENT); dump once the connection is established, or has failed", h.info["local"], fullPort)
		}},
		{"mptcp-est", nil, func(h *holder) string {
			return who(h, "fd 4") + fmt.Sprintf("MPTCP 127.0.0.1:%s -> 127.0.0.1:%s: gockpt does not dump Multipath TCP connections; end the connection before dumping, or run the program without Multipath TCP (a Go program: GODEBUG=multipathtcp=0)", h.info["local"], h.info["port"])
		}},
		{"tcp-est", nil, func(h *holder) string {
			return who(h, "fd 4") + fmt.Sprintf("TCP 127.0.0.1:%s -> 127.0.0.1:%s: gockpt dumps established TCP connections only with --tcp-established; end the connection before dumping, or dump and restore with --tcp-established", h.info["local"], h.info["port"])
		}},
		{"netlink", nil, func(h *holder) string {
			return who(h, "fd 3") + "netlink socket (NETLINK_ROUTE): messages are queued to it (" + h.info["queued"] + " bytes of its receive buffer): gockpt does not dump messages queued to netlink sockets; let the task read its netlink socket before dumping (the kernel's messages cannot be sent again)"
		}},
		{"memfd-hugetlb", nil, func(h *holder) string {
			return who(h, "fd 3") + "memfd:huge (MFD_HUGETLB): gockpt does not dump shared hugetlb memory and hugetlbfs files; map the huge pages MAP_PRIVATE|MAP_ANONYMOUS, or use ordinary pages instead of MAP_SHARED|MAP_HUGETLB or hugetlbfs"
		}},
		{"sysv-shm", nil, func(h *holder) string {
			return who(h, vmaOf(t, h.Pid, h.info["addr"])) + fmt.Sprintf("System V shared memory segment (key 0x00000000, shmid %s): gockpt does not dump System V shared memory; detach the segment (shmdt) before dumping", h.info["shmid"])
		}},
		{"flock", nil, func(h *holder) string {
			return who(h, "fd 3") + h.dir + "/locked: an exclusive flock lock: gockpt dumps file locks only with --file-locks; release the lock before dumping, or dump and restore with --file-locks"
		}},
		{"posix-lock", nil, func(h *holder) string {
			return who(h, "fd 3") + h.dir + "/locked: a POSIX write lock on bytes 2-5: gockpt dumps file locks only with --file-locks; release the lock before dumping, or dump and restore with --file-locks"
		}},
		{"ofd-lock", nil, func(h *holder) string {
			return who(h, "fd 3") + h.dir + "/locked: an OFD read lock on the whole file: gockpt dumps file locks only with --file-locks; release the lock before dumping, or dump and restore with --file-locks"
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
		{"console", nil, func(h *holder) string {
			return who(h, "fd 3") + "/dev/console: the system console, which gockpt does not restore: gockpt does not dump terminals; send the task's output elsewhere (a file, the journal) instead of /dev/console before dumping"
		}},
		{"pty", nil, func(h *holder) string {
			return who(h, "fd 3") + fmt.Sprintf("/dev/ptmx (master of /dev/pts/%s): 5 bytes written to /dev/pts/%s wait to be read from its master: gockpt does not dump terminals; let the terminal's programs read what waits for them before dumping", h.info["index"], h.info["index"])
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
		{"fanotify", nil, func(h *holder) string {
			return who(h, "fd 3") + "anon_inode:[fanotify]: 24 bytes of events not read: gockpt does not dump fanotify groups with unread events; read the pending events (until read(2) fails with EAGAIN) and answer the permission events among them before dumping"
		}},
		{"fanotify-perm", nil, func(h *holder) string {
			if c, err := strconv.Atoi(h.info["child"]); err == nil && c > 0 {
				t.Cleanup(func() { syscall.Kill(c, syscall.SIGKILL) })
			}
			return who(h, "fd 3") + "anon_inode:[fanotify]: 24 bytes of events not read, its marks ask for permission events (0x10000) a task may be waiting to have answered: gockpt does not dump fanotify groups with unread events; read the pending events (until read(2) fails with EAGAIN) and answer the permission events among them before dumping"
		}},
		{"fanotify-fs", nil, func(h *holder) string {
			return who(h, "fd 3") + "anon_inode:[fanotify]: a filesystem mark (device " + h.info["dev"] + "; mask 0x8, ignored mask 0x0): gockpt does not dump fanotify filesystem and mount-namespace marks, and marks on files or mounts that cannot be opened again; remove the mark (fanotify_mark FAN_MARK_REMOVE) before dumping"
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

// ownSocketFd is the lowest fd of this process on socket inode ino, as
// refusals name the holder of a socket outside the tree.
func ownSocketFd(t *testing.T, ino uint64) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc/self/fd")
	best := -1
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == fmt.Sprintf("socket:[%d]", ino) {
			if n, _ := strconv.Atoi(e.Name()); best < 0 || n < best {
				best = n
			}
		}
	}
	if best < 0 {
		t.Fatalf("no fd of this process holds socket inode %d", ino)
	}
	return best
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

// TestUnixQueueRefusals: a unix queue holding fds in flight or credentials
// is refused once the tree is frozen (only then can the queue be read
// without a race); the task runs on with its queue and peek offset as they
// were.
func TestUnixQueueRefusals(t *testing.T) {
	for _, c := range []struct{ kind, want string }{
		{"unix-scm", "unix dgram (unbound): a message queued to it carries 1 fd(s) in flight (SCM_RIGHTS): gockpt does not dump fds in flight (SCM_RIGHTS) and credentials queued in unix sockets; let the task read its queue before dumping"},
		{"unix-creds", "unix dgram (unbound): a message queued to it carries the sender's credentials (SO_PASSCRED on the receiver): gockpt does not dump fds in flight (SCM_RIGHTS) and credentials queued in unix sockets; let the task read its queue, or turn SO_PASSCRED off, before dumping"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			h := startHolder(t, c.kind)
			want := fmt.Sprintf("task %d (%s) fd 3: %s", h.Pid, comm(h.Pid), c.want)
			mapsBefore, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", h.Pid))
			_, err := Run(Options{Pid: h.Pid, ImagesDir: filepath.Join(t.TempDir(), "img"), LeaveRunning: true})
			if err == nil || err.Error() != want {
				t.Fatalf("error\n %v\nwant\n %s", err, want)
			}
			expectUntouched(t, h.Pid, mapsBefore)
			pfd, err := unix.PidfdOpen(h.Pid, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(pfd)
			sk, err := unix.PidfdGetfd(pfd, 3, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(sk)
			if off, err := unix.GetsockoptInt(sk, unix.SOL_SOCKET, unix.SO_PEEK_OFF); err != nil || off != -1 {
				t.Errorf("SO_PEEK_OFF %d (%v) after the refused dump, want -1", off, err)
			}
			if n, err := unix.IoctlGetInt(sk, unix.SIOCINQ); err != nil || n != 1 {
				t.Errorf("queue holds %d bytes (%v) after the refused dump, want the 1-byte message", n, err)
			}
		})
	}
}
