package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/netlock"
	"github.com/gockpt/gockpt/internal/testproc"
)

// Programs with established TCP connections and addresses, end to end:
// a real server whose client is outside the tree, CRIU's tcp-howto
// client as a shell's job, and a listener whose address is gone at
// restore.

// respConn speaks RESP, Redis's protocol, on one connection.
type respConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRedis(addr string) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &respConn{c: c, r: bufio.NewReader(c)}, nil
}

// do sends a command and returns the reply as redis-cli shows it: a
// simple string or a bulk string's value, "(nil)", "(integer) N" or
// "(error) ...".
func (rc *respConn) do(args ...string) (string, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	rc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.c.Write(b.Bytes()); err != nil {
		return "", err
	}
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "(error) " + line[1:], nil
	case ':':
		return "(integer) " + line[1:], nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bulk reply %q: %w", line, err)
		}
		if n < 0 {
			return "(nil)", nil
		}
		v := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, v); err != nil {
			return "", err
		}
		return string(v[:n]), nil
	}
	return "", fmt.Errorf("reply %q is not one this helper reads", line)
}

// must runs a command and fails the test unless the reply is want.
func (rc *respConn) must(t *testing.T, what, want string, args ...string) {
	t.Helper()
	got, err := rc.do(args...)
	if err != nil || got != want {
		t.Fatalf("%s: %s: reply %q (error %v), want %q", what, strings.Join(args, " "), got, err, want)
	}
}

// startRedis starts redis-server in a session of its own, on a free port,
// without persistence, and returns it with a connection that got PONG.
// Another program may take the port between freePort and redis's bind:
// then redis exits and a new port is tried.
func startRedis(t *testing.T, bin, dir string) (*testproc.Proc, string, *respConn) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := strconv.Itoa(freePort(t, "127.0.0.1"))
		logPath := filepath.Join(dir, fmt.Sprintf("redis-%d.log", attempt))
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd := testproc.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no")
		cmd.Stdout, cmd.Stderr = logf, logf
		p := testproc.StartCmd(t, cmd)
		logf.Close()
		var rc *respConn
		pollUntil(t, 10*time.Second, func() (bool, string) {
			if !testproc.Alive(p.Pid) {
				return true, ""
			}
			rc, err = dialRedis("127.0.0.1:" + port)
			return err == nil, fmt.Sprintf("redis-server %d does not answer on port %s: %v", p.Pid, port, err)
		})
		if rc != nil {
			t.Cleanup(func() { rc.c.Close() })
			if pong, err := rc.do("PING"); err == nil && pong == "PONG" {
				return p, port, rc
			}
		}
		log, _ := os.ReadFile(logPath)
		p.Kill()
		if attempt == 3 {
			t.Fatalf("redis-server did not start on a free port three times; its log:\n%s", log)
		}
	}
}

// tasksOf lists the thread IDs of pid: restore takes them all again.
func tasksOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out
}

// TestRealRedis: redis-server with a client connection outside the tree
// (this test, speaking RESP) is dumped with --tcp-established, killed and
// restored: on the same connection the key set before the dump is there
// and new ones are set and read, a new connection works too, and the
// network lock that held from the dump to the restore is gone.
func TestRealRedis(t *testing.T) {
	bin := program(t, "redis-server")
	dir := t.TempDir()
	p, port, rc := startRedis(t, bin, dir)
	t.Cleanup(func() { netlock.Unlock(strconv.Itoa(p.Pid)) })
	rc.must(t, "before the dump", "OK", "SET", "k1", "v1-before-dump")
	tids := tasksOf(t, p.Pid)

	imgs := filepath.Join(t.TempDir(), "img")
	gockpt(t, "dump", "-t", strconv.Itoa(p.Pid), "-D", imgs, "--tcp-established")
	p.Cmd.Wait()
	if tabs := gockptTables(t, p.Pid); len(tabs) != 1 {
		t.Fatalf("after the dump the network lock should hold until restore: tables %v", tabs)
	}
	waitPidsFree(t, tids)
	gockpt(t, "restore", "-D", imgs, "-d", "--tcp-established")
	t.Cleanup(func() { killRestored(p.Pid) })

	rc.must(t, "after restore, same connection", "v1-before-dump", "GET", "k1")
	rc.must(t, "after restore, same connection", "OK", "SET", "k2", "v2-after-restore")
	rc.must(t, "after restore, same connection", "v2-after-restore", "GET", "k2")
	fresh, err := dialRedis("127.0.0.1:" + port)
	if err != nil {
		t.Fatalf("a new connection to the restored redis-server: %v", err)
	}
	defer fresh.c.Close()
	fresh.must(t, "after restore, new connection", "v1-before-dump", "GET", "k1")
	fresh.must(t, "after restore, new connection", "v2-after-restore", "GET", "k2")
	fresh.must(t, "after restore, new connection", "(integer) 2", "DBSIZE")
	if tabs := gockptTables(t, p.Pid); len(tabs) != 0 {
		t.Errorf("network lock tables left after restore: %v", tabs)
	}
}

// TestTCPHowto follows CRIU's tcp-howto: a ping-pong client, started as
// a job of a shell on a terminal, talks to a server outside the tree.
// A plain dump is refused, naming the connection and --tcp-established
// first, then the terminal (as CRIU's howto shows them, one after the
// other); the options come from a config file (--config): with
// tcp-established alone the refusal names --shell-job, with shell-job
// alone it names --tcp-established, and with both the dump succeeds. The shell restores
// the job with the same file on the same terminal, and the client goes
// on on the same connection: its counter passes its value at the dump,
// on its terminal too, and the server saw one connection.
func TestTCPHowto(t *testing.T) {
	client := testproc.BuildC(t, "testdata/tcphowto_client.c")
	shell := testproc.BuildC(t, "testdata/fgshell.c")
	srv := startEchoServer(t)
	dir := t.TempDir()
	imgs := filepath.Join(t.TempDir(), "img")
	conf := filepath.Join(t.TempDir(), "gockpt.conf")
	writeConf := func(lines ...string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	master, slavePath := ptyPair(t)
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	cmd := exec.Command(shell, "-w", dir, client, dir, srv.port(), "--",
		self, "restore", "-D", imgs, "--config", conf, "--no-default-config", "-v4", "-o", "restore.log")
	cmd.Env = append(os.Environ(), "GOCKPT_TEST_AS_GOCKPT=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	job := 0
	t.Cleanup(func() {
		if job != 0 {
			syscall.Kill(job, syscall.SIGKILL)
			netlock.Unlock(strconv.Itoa(job))
		}
		testproc.KillTree(cmd.Process.Pid)
		if cmd.ProcessState == nil {
			cmd.Wait()
		}
	})
	out := readTerminal(master)
	testproc.WaitFile(t, filepath.Join(dir, "job"), 10*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "job"))
	job, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	clientRuns(t, dir, job, 0, srv, "before the dump")
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", job))
	task := fmt.Sprintf("task %d (%s)", job, strings.TrimSpace(string(comm)))
	terminal := fmt.Sprintf("Error: %s: controlling terminal %s: attached to shell terminal: use --shell-job: gockpt does not dump terminals (CRIU: --shell-job); dump with --shell-job, and restore with --shell-job on a terminal; or start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)\n",
		task, slavePath)
	connection := fmt.Sprintf("Error: %s fd 3: TCP 127.0.0.1:%s -> 127.0.0.1:%s: gockpt dumps established TCP connections only with --tcp-established; end the connection before dumping, or dump and restore with --tcp-established\n",
		task, clientPort(t, job), srv.port())

	dump := func(conf ...string) (int, string) {
		args := append([]string{"dump", "-t", strconv.Itoa(job), "-D", imgs, "--no-default-config"}, conf...)
		var o, e bytes.Buffer
		code := run(args, &o, &e)
		return code, e.String()
	}
	refused := func(what, want string, conf ...string) {
		t.Helper()
		code, e := dump(conf...)
		if first, _, _ := strings.Cut(e, "(see "); code != 1 || first != want {
			t.Fatalf("%s: exit %d, stderr\n %q\nwant\n %q", what, code, e, want)
		}
		clientRuns(t, dir, job, clientCount(dir), srv, "after the refused dump "+what)
	}
	refused("without options", connection+strings.TrimPrefix(terminal, "Error: "))
	writeConf("tcp-established")
	refused("with tcp-established in the config file", terminal, "--config", conf)
	writeConf("shell-job")
	refused("with shell-job in the config file", connection, "--config", conf)
	writeConf("tcp-established", "shell-job")
	if code, e := dump("--config", conf); code != 0 {
		t.Fatalf("dump with tcp-established and shell-job in the config file: exit %d: %s", code, e)
	}
	out.waitFor(t, "job ended (0x9)\r\n$ ")
	before := clientCount(dir)
	if tabs := gockptTables(t, job); len(tabs) != 1 {
		t.Fatalf("after the dump the network lock should hold until restore: tables %v", tabs)
	}
	// Restore is typed once dump has returned, as in the howto: until
	// then gockpt dump holds its copy of the connection (in repair mode)
	// and a restore making the same connection fails (connect ... in
	// repair mode: cannot assign requested address).
	if _, err := master.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	// The shell restores the job: it runs again once restore let it go
	// (no tracer) and its counter moves on.
	pollUntil(t, 10*time.Second, func() (bool, string) {
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", job))
		log, _ := os.ReadFile(filepath.Join(imgs, "restore.log"))
		return testproc.Alive(job) && bytes.Contains(status, []byte("\nTracerPid:\t0\n")),
			fmt.Sprintf("client %d not restored; terminal %q; restore.log:\n%s", job, tail(out.String(), 300), log)
	})
	clientRuns(t, dir, job, before, srv, "after restore")
	out.waitFor(t, fmt.Sprintf("pong %d\r\n", before+10)) // ONLCR: the terminal writes \r\n
	if conns, err := srv.state(); conns != 1 || err != nil {
		t.Errorf("the server saw %d connections (error %v), want 1 and none", conns, err)
	}
	if tabs := gockptTables(t, job); len(tabs) != 0 {
		t.Errorf("network lock tables left after restore: %v", tabs)
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

var netnsSeq atomic.Int32

// testNetns makes a network namespace for this test, named
// gockpt-test-PID-N, with lo up and a veth pair (v0 192.0.2.1/24, v1
// 192.0.2.2/24) up; cleanup deletes it by that name.
func testNetns(t *testing.T, ipBin string) string {
	t.Helper()
	name := fmt.Sprintf("gockpt-test-%d-%d", os.Getpid(), netnsSeq.Add(1))
	ip := func(args ...string) {
		t.Helper()
		if b, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, b)
		}
	}
	ip("netns", "add", name)
	t.Cleanup(func() { exec.Command(ipBin, "netns", "del", name).Run() })
	ip("-n", name, "link", "set", "lo", "up")
	ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ip("-n", name, "addr", "add", "192.0.2.1/24", "dev", "v0")
	ip("-n", name, "addr", "add", "192.0.2.2/24", "dev", "v1")
	ip("-n", name, "link", "set", "v0", "up")
	ip("-n", name, "link", "set", "v1", "up")
	return name
}

// readIn connects to addr from inside the network namespace name and
// returns the line the server says, then closes the connection.
func readIn(name, addr string) (string, error) {
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, moved to the namespace, exits with
		// the goroutine instead of serving others.
		runtime.LockOSThread()
		ns, err := os.Open("/run/netns/" + name)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("setns %s: %w", name, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		done <- result{line, err}
	}()
	r := <-done
	return r.s, r.err
}

// TestRestoreAddressMissing: a server listening on 192.0.2.1, in a
// network namespace of the test's own, is dumped from inside that
// namespace. With the address gone, restore fails naming the address and
// the port, and leaves nothing running; once the address is back,
// restore brings the server back and it serves its second connection.
func TestRestoreAddressMissing(t *testing.T) {
	ipBin := program(t, "ip")
	nsenter := program(t, "nsenter")
	gockptBin := testproc.BuildGockpt(t)
	server := testproc.BuildC(t, "testdata/addrserver.c")
	ns := testNetns(t, ipBin)
	// nsenter enters the network namespace alone (ip netns exec makes a
	// mount namespace too, which gockpt would refuse) and execs.
	inNs := []string{"--net=/run/netns/" + ns}
	dir := t.TempDir()
	p := testproc.Start(t, nsenter, append(inNs, server, dir, "192.0.2.1")...)
	t.Cleanup(func() { killRestored(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "port"))
	port := strings.TrimSpace(string(b))
	addr := "192.0.2.1:" + port
	hello := fmt.Sprintf("hello from %d\n", p.Pid)
	served := func(n int) {
		t.Helper()
		pollUntil(t, 10*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(filepath.Join(dir, "served"))
			return strings.TrimSpace(string(b)) == strconv.Itoa(n), fmt.Sprintf("the server served %q connections, want %d", b, n)
		})
	}
	if got, err := readIn(ns, addr); got != hello || err != nil {
		t.Fatalf("before the dump the server said %q (error %v), want %q", got, err, hello)
	}
	served(1) // and the connection is closed: the dump sees the listener alone

	gockptIn := func(args ...string) (int, string) {
		c := exec.Command(nsenter, append(append(inNs, gockptBin), append(args, "--no-default-config")...)...)
		var e bytes.Buffer
		c.Stderr = &e
		err := c.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return c.ProcessState.ExitCode(), e.String()
	}
	imgs := filepath.Join(t.TempDir(), "img")
	if code, e := gockptIn("dump", "-t", strconv.Itoa(p.Pid), "-D", imgs); code != 0 {
		t.Fatalf("dump in the namespace: exit %d: %s", code, e)
	}
	p.Cmd.Wait()
	waitPidsFree(t, []int{p.Pid})
	ip := func(args ...string) {
		t.Helper()
		if b, err := exec.Command(ipBin, append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, b)
		}
	}
	ip("addr", "del", "192.0.2.1/24", "dev", "v0")

	want := fmt.Sprintf("TCP %s listening: bind to %s: cannot assign requested address (the address is not on this machine, or the port is taken)", addr, addr)
	if code, e := gockptIn("restore", "-D", imgs, "-d"); code != 1 || !strings.Contains(e, want) {
		t.Fatalf("restore without the address: exit %d: %s\nwant it to say %q", code, e, want)
	}
	waitPidsFree(t, []int{p.Pid})

	ip("addr", "add", "192.0.2.1/24", "dev", "v0")
	if code, e := gockptIn("restore", "-D", imgs, "-d"); code != 0 {
		t.Fatalf("restore with the address back: exit %d: %s", code, e)
	}
	if got, err := readIn(ns, addr); got != hello || err != nil {
		t.Fatalf("after restore the server said %q (error %v), want %q", got, err, hello)
	}
	served(2)
}
