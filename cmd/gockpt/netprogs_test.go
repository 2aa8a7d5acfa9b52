package main

import (
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// Network servers and clients (issue 11) dumped and restored end to end
// without established TCP connections: each serves new connections after
// restore from the same PIDs. Traffic stays on 127.0.0.1.

// freePort is a TCP port nobody has on host (127.0.0.1 or ::1) right now.
func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fetch GETs url on a new connection that is closed after the answer
// (no keep-alive: the server must hold no connection at the dump).
func fetch(url string) (int, string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustFetch fails the test unless url answers 200 with want.
func mustFetch(t *testing.T, url, want string) {
	t.Helper()
	code, body, err := fetch(url)
	if err != nil || code != 200 || body != want {
		t.Fatalf("GET %s: %d, %d bytes (%.40q...), %v; want 200 and the %d bytes written", url, code, len(body), body, err, len(want))
	}
}

// waitServes waits until url answers 200 with want; logs says what the
// server wrote when it does not.
func waitServes(t *testing.T, url, want string, logs func() string) {
	t.Helper()
	pollUntil(t, 10*time.Second, func() (bool, string) {
		code, body, err := fetch(url)
		return err == nil && code == 200 && body == want,
			fmt.Sprintf("GET %s: %d, %d bytes, %v; server output:\n%s", url, code, len(body), err, logs())
	})
}

// waitNoConnections waits until no process holds a TCP socket on the
// local port besides its listener: a connection the server has not
// closed yet would be refused by the dump (established TCP).
func waitNoConnections(t *testing.T, port int) {
	t.Helper()
	pollUntil(t, 10*time.Second, func() (bool, string) {
		for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(b), "\n")[1:] {
				x := strings.Fields(l)
				if len(x) < 10 {
					continue
				}
				local, state, inode := x[1], x[3], x[9]
				if strings.HasSuffix(local, fmt.Sprintf(":%04X", port)) && state != "0A" && inode != "0" {
					return false, fmt.Sprintf("a socket on port %d is still open (%s: %s)", port, f, l)
				}
			}
		}
		return true, ""
	})
}

// treeTasks maps every process of the tree rooted at root to its
// threads and names each process by its command line and credentials.
func treeTasks(root int) (map[int][]int, map[int]string) {
	tids, cmdline := map[int][]int{}, map[int]string{}
	for _, pid := range append([]int{root}, testproc.Descendants(root)...) {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				tids[pid] = append(tids[pid], tid)
			}
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cmdline[pid] = strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "Uid:") || strings.HasPrefix(l, "Gid:") {
				cmdline[pid] += " (" + strings.Join(strings.Fields(l), " ") + ")"
			}
		}
	}
	return tids, cmdline
}

// dumpRestore dumps the tree of p (which kills it), waits until all its
// PIDs and thread IDs are free, calls between (when not nil), restores
// the tree with -d and checks that the same processes run again: same
// PIDs, command lines and credentials, and every thread ID back. It
// returns the processes restored.
func dumpRestore(t *testing.T, p *testproc.Proc, between func()) map[int]string {
	t.Helper()
	tids, cmdline := treeTasks(p.Pid)
	var all []int
	for _, ts := range tids {
		all = append(all, ts...)
	}
	imgs := filepath.Join(t.TempDir(), "img")
	start := time.Now()
	gockpt(t, "dump", "-t", strconv.Itoa(p.Pid), "-D", imgs)
	dumped := time.Since(start)
	p.Cmd.Wait()
	waitPidsFree(t, all)
	if between != nil {
		between()
	}
	start = time.Now()
	gockpt(t, "restore", "-D", imgs, "-d")
	t.Logf("%d processes %v, %d threads: dump %v, restore %v", len(tids), cmdline, len(all), dumped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	after, afterCmd := treeTasks(p.Pid)
	for pid, ts := range tids {
		if !testproc.Alive(pid) || afterCmd[pid] != cmdline[pid] {
			t.Fatalf("process %d (%s) is not back: the tree is now %v", pid, cmdline[pid], afterCmd)
		}
		have := map[int]bool{}
		for _, tid := range after[pid] {
			have[tid] = true
		}
		for _, tid := range ts {
			if !have[tid] {
				t.Fatalf("process %d (%s): thread %d is not back (threads now %v)", pid, cmdline[pid], tid, after[pid])
			}
		}
	}
	if len(after) != len(tids) {
		t.Fatalf("restored tree %v, want the processes %v", afterCmd, cmdline)
	}
	return afterCmd
}

// content is a file's worth of known bytes, different for each name.
func content(name string, size int) string {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%s line %d\n", name, i)
	}
	return b.String()[:size]
}

// outputFile is a file in dir for a program's stdout and stderr, and a
// function that reads what it holds.
func outputFile(t *testing.T, dir string) (*os.File, func() string) {
	t.Helper()
	path := filepath.Join(dir, "output")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	return f, func() string { b, _ := os.ReadFile(path); return string(b) }
}

// TestNetPythonHTTPServer: `python3 -m http.server` on 127.0.0.1, and on
// ::1, serves a directory; after dump and restore -d the same process
// serves the file to new connections.
func TestNetPythonHTTPServer(t *testing.T) {
	python := program(t, "python3")
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) { testPythonHTTPServer(t, python, host) })
	}
}

func testPythonHTTPServer(t *testing.T, python, host string) {
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	want := content("python", 70000)
	if err := os.WriteFile(filepath.Join(www, "hello.txt"), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, host)
	out, logs := outputFile(t, dir)
	cmd := testproc.Command(python, "-m", "http.server", strconv.Itoa(port), "--bind", host, "--directory", www)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	p := testproc.StartCmd(t, cmd)
	out.Close()
	t.Cleanup(func() { killRestored(p.Pid) })
	base := "http://" + net.JoinHostPort(host, strconv.Itoa(port))
	waitServes(t, base+"/hello.txt", want, logs)
	waitNoConnections(t, port)

	dumpRestore(t, p, nil)
	for i := 0; i < 3; i++ {
		mustFetch(t, base+"/hello.txt", want)
	}
	if code, _, err := fetch(base + "/missing"); err != nil || code != 404 {
		t.Fatalf("GET /missing after restore: %d, %v; want 404", code, err)
	}
}

// TestNetGoHTTPServer: a Go net/http server (several threads, an epoll
// instance, an eventfd) serves files and counts the requests to /count
// in memory; after dump and restore -d the same process, with all its
// threads, serves the file and counts on. Go (1.24 on) listens with
// Multipath TCP where the kernel has it, as here: the listener is made
// again as one; with GODEBUG=multipathtcp=0 it is plain TCP.
func TestNetGoHTTPServer(t *testing.T) {
	for _, c := range []struct{ name, godebug, proto string }{{"mptcp", "", "MPTCP"}, {"tcp", "multipathtcp=0", "TCP"}} {
		t.Run(c.name, func(t *testing.T) {
			bin := testproc.BuildGo(t, "./testdata/httpserve")
			dir := t.TempDir()
			want := content("go", 50000)
			if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			port := freePort(t, "127.0.0.1")
			out, logs := outputFile(t, dir)
			cmd := testproc.Command(bin, fmt.Sprintf("127.0.0.1:%d", port), dir)
			cmd.Stdout, cmd.Stderr = out, out
			cmd.Env = append(os.Environ(), "GODEBUG="+c.godebug)
			p := testproc.StartCmd(t, cmd)
			out.Close()
			t.Cleanup(func() { killRestored(p.Pid) })
			base := fmt.Sprintf("http://127.0.0.1:%d", port)
			waitServes(t, base+"/hello.txt", want, logs)
			mustFetch(t, base+"/count", "1\n")
			waitNoConnections(t, port)
			if got := listenerProto(t, p.Pid, port); got != c.proto {
				t.Fatalf("the server listens with %s, want %s", got, c.proto)
			}

			dumpRestore(t, p, nil)
			if got := listenerProto(t, p.Pid, port); got != c.proto {
				t.Fatalf("the restored server listens with %s, want %s", got, c.proto)
			}
			mustFetch(t, base+"/hello.txt", want)
			mustFetch(t, base+"/count", "2\n")
			mustFetch(t, base+"/count", "3\n")
		})
	}
}

// listenerProto is the protocol (TCP, MPTCP) of task pid's socket
// listening on port, as its system.sockprotoname says.
func listenerProto(t *testing.T, pid, port int) string {
	t.Helper()
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pfd)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range fds {
		n, _ := strconv.Atoi(e.Name())
		fd, err := unix.PidfdGetfd(pfd, n, 0)
		if err != nil {
			continue
		}
		b := make([]byte, 32)
		l, _ := unix.Getxattr(fmt.Sprintf("/proc/self/fd/%d", fd), "system.sockprotoname", b)
		acc, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		sa, _ := unix.Getsockname(fd)
		unix.Close(fd)
		if a, ok := sa.(*unix.SockaddrInet4); ok && acc == 1 && a.Port == port && l > 0 {
			return strings.TrimRight(string(b[:l]), "\x00 ")
		}
	}
	t.Fatalf("task %d has no socket listening on port %d", pid, port)
	return ""
}

// TestNetNginx: nginx, a master and two worker processes (workers as
// nobody; shared anonymous memory, epoll, eventfd, a socketpair per
// worker, one listening socket in all three), serves a file; after dump
// and restore -d the same master and workers serve it to new
// connections, and the master still answers a signal by its workers.
func TestNetNginx(t *testing.T) {
	nginx := program(t, "nginx")
	prefix := t.TempDir()
	// The workers run as nobody: they must reach the files.
	for _, d := range []string{filepath.Dir(prefix), prefix} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"html", "logs", "tmp"} {
		if err := os.Mkdir(filepath.Join(prefix, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := content("nginx", 100000)
	if err := os.WriteFile(filepath.Join(prefix, "html", "hello.txt"), []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "127.0.0.1")
	conf := filepath.Join(prefix, "nginx.conf")
	errLog := filepath.Join(prefix, "logs", "error.log")
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "\t%s_temp_path %s;\n", k, filepath.Join(prefix, "tmp", k))
	}
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`worker_processes 2;
error_log %s info;
pid %s;
events { worker_connections 64; }
http {
	access_log %s;
%s	server {
		listen 127.0.0.1:%d;
		root %s;
	}
}
`, errLog, filepath.Join(prefix, "logs", "nginx.pid"), filepath.Join(prefix, "logs", "access.log"), temps.String(), port, filepath.Join(prefix, "html"))), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, logs := outputFile(t, prefix)
	cmd := testproc.Command(nginx, "-p", prefix, "-c", conf, "-e", errLog, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = out, out
	p := testproc.StartCmd(t, cmd)
	out.Close()
	t.Cleanup(func() { killRestored(p.Pid) })
	nginxLogs := func() string {
		b, _ := os.ReadFile(errLog)
		return logs() + string(b)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/hello.txt", port)
	waitServes(t, url, want, nginxLogs)
	workers := func() []int {
		var w []int
		_, cmdline := treeTasks(p.Pid)
		for pid, c := range cmdline {
			if strings.HasPrefix(c, "nginx: worker process (") {
				w = append(w, pid)
			}
		}
		return w
	}
	pollUntil(t, 10*time.Second, func() (bool, string) {
		return len(workers()) == 2, fmt.Sprintf("nginx workers %v, want 2; log:\n%s", workers(), nginxLogs())
	})
	waitNoConnections(t, port)

	procs := dumpRestore(t, p, nil)
	if len(procs) != 3 || len(workers()) != 2 {
		t.Fatalf("restored nginx: %v, want the master and 2 workers", procs)
	}
	for i := 0; i < 4; i++ {
		mustFetch(t, url, want)
	}
	// The restored master still runs its workers: it passes SIGUSR1
	// (reopen the logs) to them over their socketpairs (a failed sendmsg
	// would be an alert in the log), and each says it reopened.
	before := strings.Count(nginxLogs(), "reopening logs")
	if err := syscall.Kill(p.Pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, func() (bool, string) {
		n := strings.Count(nginxLogs(), "reopening logs") - before
		return n >= 3, fmt.Sprintf("%d of master and 2 workers reopened their logs after SIGUSR1; log:\n%s", n, nginxLogs())
	})
	mustFetch(t, url, want)
	// No worker died and was replaced, nothing went wrong.
	if _, now := treeTasks(p.Pid); fmt.Sprint(now) != fmt.Sprint(procs) {
		t.Fatalf("nginx is now %v, was %v after restore", now, procs)
	}
	for _, l := range strings.Split(nginxLogs(), "\n") {
		for _, level := range []string{"[error]", "[crit]", "[alert]", "[emerg]"} {
			if strings.Contains(l, level) {
				t.Fatalf("nginx logged %q", l)
			}
		}
	}
}

// udpServer answers each counter n a client sends with n+1 and keeps
// what it got, in order, with the sender's address.
type udpServer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []uint64
	from map[string]bool
}

func startUDPServer(t *testing.T) *udpServer {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &udpServer{conn: c, from: map[string]bool{}}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, addr, err := c.ReadFromUDP(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // an ICMP error from a client gone a moment
			}
			v, err := strconv.ParseUint(string(buf[:n]), 10, 64)
			if err != nil {
				continue
			}
			s.mu.Lock()
			s.got = append(s.got, v)
			s.from[addr.String()] = true
			s.mu.Unlock()
			c.WriteToUDP([]byte(strconv.FormatUint(v+1, 10)), addr)
		}
	}()
	return s
}

// seen is how many counters the server got and the last one.
func (s *udpServer) seen() (int, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return 0, 0
	}
	return len(s.got), s.got[len(s.got)-1]
}

// TestNetUDPPing: a UDP client sends its counter every 10 ms to a server
// outside the tree (a goroutine of the test) and checks each answer. It
// is dumped and restored -d while the server keeps answering: the
// restored client continues its count from where it was, from the same
// address and port, and the server keeps getting it.
func TestNetUDPPing(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/udpping.c")
	srv := startUDPServer(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	out, logs := outputFile(t, dir)
	_, port, _ := net.SplitHostPort(srv.conn.LocalAddr().String())
	cmd := testproc.Command(bin, port, state)
	cmd.Stdout, cmd.Stderr = out, out
	p := testproc.StartCmd(t, cmd)
	out.Close()
	t.Cleanup(func() { killRestored(p.Pid) })
	pollUntil(t, 10*time.Second, func() (bool, string) {
		n, last := srv.seen()
		return last >= 20, fmt.Sprintf("the server got %d counters, the last %d; client output %q", n, last, logs())
	})

	var atDump uint64
	dumpRestore(t, p, func() { _, atDump = srv.seen() }) // the client is gone: its last counter
	pollUntil(t, 10*time.Second, func() (bool, string) {
		n, last := srv.seen()
		return last >= atDump+30, fmt.Sprintf("after restore (counter %d at the dump) the server got %d counters, the last %d; client output %q",
			atDump, n, last, logs())
	})
	b, _ := os.ReadFile(state)
	if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil || v < atDump {
		t.Fatalf("the client's state file says %q, want at least %d", b, atDump)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	// Each counter is the one before (sent again without an answer) or
	// the next: a restart from 1 or a lost state would break the chain.
	if srv.got[0] != 1 {
		t.Fatalf("the first counter was %d, want 1", srv.got[0])
	}
	for i := 1; i < len(srv.got); i++ {
		if d := srv.got[i] - srv.got[i-1]; srv.got[i] < srv.got[i-1] || d > 1 {
			t.Fatalf("counter %d came after %d (%d at the dump)", srv.got[i], srv.got[i-1], atDump)
		}
	}
	if len(srv.from) != 1 {
		t.Fatalf("the server got counters from %v, want one address and port throughout", srv.from)
	}
	if s := logs(); s != "" {
		t.Fatalf("the client wrote %q", s)
	}
}
