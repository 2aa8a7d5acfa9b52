package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// TestDumpRestoreCLI drives the commands as a user does: dump prints its
// summary and writes its log; restore without -d waits for the restored
// root and exits with its exit status; the log pointer is printed on errors.
func TestDumpRestoreCLI(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/exiter.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	imgs := filepath.Join(t.TempDir(), "img")
	tree := append(testproc.Descendants(p.Pid), p.Pid)

	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs, "--display-stats"}, &out, &errOut); code != 0 {
		t.Fatalf("dump exit %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "Dumped 1 tasks, 1 threads, ") || !strings.Contains(out.String(), "Memory pages written: ") {
		t.Fatalf("dump printed %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(imgs, "dump.log")); err != nil {
		t.Fatalf("no dump.log in the images directory: %v", err)
	}
	p.Cmd.Wait()
	for _, pid := range tree {
		for i := 0; i < 500 && testproc.Alive(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}

	done := make(chan int)
	go func() {
		var o, e bytes.Buffer
		done <- run([]string{"restore", "-D", imgs}, &o, &e)
	}()
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	// restore waits for the restored root: it must not return before the
	// root exits.
	select {
	case code := <-done:
		t.Fatalf("restore returned %d before the restored task exited", code)
	case <-time.After(300 * time.Millisecond):
	}
	if !testproc.Alive(p.Pid) {
		t.Fatalf("task %d not running after restore", p.Pid)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	select {
	case code := <-done:
		if code != 7 {
			t.Fatalf("restore exit status %d, want the restored task's 7", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restore did not return after the restored task exited")
	}

	// A failing restore prints the error once with a pointer to its log.
	out.Reset()
	errOut.Reset()
	missing := filepath.Join(t.TempDir(), "nothing")
	if code := run([]string{"restore", "-D", missing}, &out, &errOut); code != 1 {
		t.Fatalf("restore of a missing directory exit %d", code)
	}
	want := fmt.Sprintf("Error: images directory %s does not exist: check -D\n", missing)
	if errOut.String() != want {
		t.Fatalf("stderr %q, want %q", errOut.String(), want)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("a failed restore created the images directory")
	}
	// With a log, the error says where it is.
	errOut.Reset()
	os.Mkdir(missing, 0o700)
	run([]string{"restore", "-D", missing}, &out, &errOut)
	if !strings.HasSuffix(errOut.String(), fmt.Sprintf("(see %s/restore.log)\n", missing)) || strings.Count(errOut.String(), "Error:") != 1 {
		t.Fatalf("stderr %q", errOut.String())
	}
}

// TestExtUnixSk: a dgram socket connected to a server outside the tree is
// refused without --ext-unix-sk, dumped with it, refused by a restore
// without it (leaving nothing behind), and connected to the server's name
// again by a restore with it: the restored task's next datagram reaches
// the server.
func TestExtUnixSk(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/dgclient.c")
	dir := t.TempDir()
	srvPath := filepath.Join(dir, "srv.sock")
	srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: srvPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p := testproc.Start(t, bin, dir, srvPath)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	recv := func(want string) {
		t.Helper()
		buf := make([]byte, 64)
		srv.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := srv.ReadFromUnix(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("server got %q (%v), want %q", buf[:n], err, want)
		}
	}
	recv("before")
	imgs := filepath.Join(t.TempDir(), "img")
	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs}, &out, &errOut); code != 1 {
		t.Fatalf("dump without --ext-unix-sk exit %d: %s", code, errOut.String())
	}
	var srvFd int
	if rc, err := srv.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { srvFd = int(fd) })
	}
	_, srvIno := socketOf(t, "self", srvFd)
	_, cliIno := socketOf(t, fmt.Sprint(p.Pid), 3)
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid))
	wantErr := fmt.Sprintf("Error: task %d (%s) fd 3: unix dgram (unbound) peer %s inode %d (fd %d of task %d (gockpt.test)) outside the dumped tree: gockpt does not dump unix sockets connected outside the dumped tree (CRIU: --ext-unix-sk); dump with --ext-unix-sk to connect it to %s again at restore (it must exist then), or dump the tree that holds the peer too\n",
		p.Pid, strings.TrimSpace(string(comm)), srvPath, srvIno, srvFd, os.Getpid(), srvPath)
	if !strings.HasPrefix(errOut.String(), wantErr) {
		t.Fatalf("stderr\n %q\nwant\n %q", errOut.String(), wantErr)
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs, "--ext-unix-sk"}, &out, &errOut); code != 0 {
		t.Fatalf("dump --ext-unix-sk exit %d: %s", code, errOut.String())
	}
	p.Cmd.Wait()
	for i := 0; i < 500 && testproc.Alive(p.Pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), fmt.Sprintf("unix dgram (unbound) (inode %d): its peer %s is outside the tree: restore with --ext-unix-sk to connect it by name", cliIno, srvPath)) {
		t.Fatalf("restore without --ext-unix-sk exit %d: %s", code, errOut.String())
	}
	if testproc.Alive(p.Pid) {
		t.Fatalf("a refused restore left task %d behind", p.Pid)
	}
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d", "--ext-unix-sk"}, &out, &errOut); code != 0 {
		t.Fatalf("restore --ext-unix-sk exit %d: %s", code, errOut.String())
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	recv("after")
}

// socketOf is fd of process pid ("self" for this one), a socket, and the
// socket's inode.
func socketOf(t *testing.T, pid string, fd int) (int, uint64) {
	t.Helper()
	ents, _ := os.ReadDir("/proc/" + pid + "/fd")
	best, ino := -1, uint64(0)
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		l, _ := os.Readlink("/proc/" + pid + "/fd/" + e.Name())
		var i uint64
		if _, err := fmt.Sscanf(l, "socket:[%d]", &i); err != nil || fd >= 0 && n != fd {
			continue
		}
		if best < 0 || n < best {
			best, ino = n, i
		}
	}
	if best < 0 {
		t.Fatalf("process %s holds no socket at fd %d", pid, fd)
	}
	return best, ino
}

// TestCowPss: a parent and the child it forked share 256 MiB of private
// memory copy-on-write; after dump and restore they still share it: the
// summed Pss of the restored tree is within 10% of the original's (one
// copy, not two).
func TestCowPss(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/cowtree.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 30*time.Second)
	tree := append([]int{p.Pid}, testproc.Descendants(p.Pid)...)
	if len(tree) != 2 {
		t.Fatalf("tree %v, want a parent and a child", tree)
	}
	pss := func() uint64 {
		var sum uint64
		for _, pid := range tree {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
					n, _ := strconv.ParseUint(f[1], 10, 64)
					sum += n
				}
			}
		}
		return sum
	}
	before := pss()
	imgs := filepath.Join(t.TempDir(), "img")
	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs}, &out, &errOut); code != 0 {
		t.Fatalf("dump exit %d: %s", code, errOut.String())
	}
	p.Cmd.Wait()
	// The child, orphaned, is reaped by PID 1, late here: wait until both
	// PIDs are free.
	for _, pid := range tree {
		for i := 0; i < 1000; i++ {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if code := run([]string{"restore", "-D", imgs, "-d"}, &out, &errOut); code != 0 {
		t.Fatalf("restore exit %d: %s", code, errOut.String())
	}
	after := pss()
	t.Logf("summed Pss: %d KiB before, %d KiB after restore", before, after)
	if float64(after) > float64(before)*1.1 || float64(after) < float64(before)*0.9 {
		t.Errorf("summed Pss %d KiB after restore, %d KiB before: copy-on-write sharing lost", after, before)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
}

// TestInheritFd: a task writing to a pipe whose reader is outside the
// tree is restored with --inherit-fd fd[N]:pipe:[INO] (CRIU's spelling,
// what runc passes): its stdout is then restore's fd N, a new pipe this
// test reads. A key the images do not name is refused before any task is
// made.
func TestInheritFd(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/pipewriter.c")
	dir := t.TempDir()
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	cmd := exec.Command(bin, dir)
	cmd.Stdout = w1
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w1.Close()
	t.Cleanup(func() { testproc.KillTree(cmd.Process.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	line := make([]byte, 16)
	if n, _ := r1.Read(line); string(line[:n]) != "before\n" {
		t.Fatalf("read %q, want before", line[:n])
	}
	var st syscall.Stat_t
	syscall.Fstat(int(r1.Fd()), &st)
	imgs := filepath.Join(t.TempDir(), "img")
	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(cmd.Process.Pid), "-D", imgs}, &out, &errOut); code != 0 {
		t.Fatalf("dump exit %d: %s", code, errOut.String())
	}
	cmd.Wait()
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	defer w2.Close()
	key := fmt.Sprintf("pipe:[%d]", st.Ino)
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d", "--inherit-fd", fmt.Sprintf("fd[%d]:pipe:[1]", w2.Fd())}, &out, &errOut); code != 1 ||
		!strings.HasPrefix(errOut.String(), fmt.Sprintf("Error: --inherit-fd fd[%d]:pipe:[1]: no file of the images is pipe:[1] (they name ", w2.Fd())) {
		t.Fatalf("restore with a key the images lack: exit %d: %s", code, errOut.String())
	}
	if testproc.Alive(cmd.Process.Pid) {
		t.Fatal("a refused restore made the task")
	}
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d", "--inherit-fd", fmt.Sprintf("fd[%d]:%s", w2.Fd(), key)}, &out, &errOut); code != 0 {
		t.Fatalf("restore exit %d: %s", code, errOut.String())
	}
	w2.Close()
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	r2.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := r2.Read(line)
	if string(line[:n]) != "after\n" {
		t.Fatalf("the inherited pipe got %q, want after", line[:n])
	}
}

// TestRestorePortTaken: a TCP listener is dumped; when its port is taken
// by the time of restore, restore names the address and the port, and
// leaves nothing running; once the port is free, restore brings the
// listener back on it.
func TestRestorePortTaken(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/listener.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "port"))
	port := strings.TrimSpace(string(b))
	imgs := filepath.Join(t.TempDir(), "img")
	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs}, &out, &errOut); code != 0 {
		t.Fatalf("dump exit %d: %s", code, errOut.String())
	}
	p.Cmd.Wait()
	squat, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("take the port back: %v", err)
	}
	errOut.Reset()
	want := fmt.Sprintf("TCP 127.0.0.1:%s listening: bind to 127.0.0.1:%s: address already in use (the address is not on this machine, or the port is taken)", port, port)
	if code := run([]string{"restore", "-D", imgs, "-d"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), want) {
		squat.Close()
		t.Fatalf("restore with the port taken: exit %d: %s\nwant it to say %q", code, errOut.String(), want)
	}
	if testproc.Alive(p.Pid) {
		t.Fatal("a refused restore left the task")
	}
	squat.Close()
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d"}, &out, &errOut); code != 0 {
		t.Fatalf("restore exit %d: %s", code, errOut.String())
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+port)
	if err != nil {
		t.Fatalf("the restored listener does not answer: %v", err)
	}
	c.Close()
}

// TestUDPDropped: datagrams waiting in a UDP socket cannot be put back:
// dump drops them, and says how many in its summary and with
// --display-stats; the restored socket has an empty queue and receives
// what is sent to it next.
func TestUDPDropped(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/udprecv.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "port"))
	addr := "127.0.0.1:" + strings.TrimSpace(string(b))
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []string{"one", "seven"} {
		if _, err := c.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	imgs := filepath.Join(t.TempDir(), "img")
	var out, errOut bytes.Buffer
	if code := run([]string{"dump", "-t", fmt.Sprint(p.Pid), "-D", imgs, "--display-stats"}, &out, &errOut); code != 0 {
		t.Fatalf("dump exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "; 2 UDP datagrams (8 bytes) waiting to be read were dropped\n") || !strings.HasSuffix(out.String(), "UDP datagrams dropped: 2 (8 bytes)\n") {
		t.Fatalf("dump printed %q", out.String())
	}
	p.Cmd.Wait()
	errOut.Reset()
	if code := run([]string{"restore", "-D", imgs, "-d"}, &out, &errOut); code != 0 {
		t.Fatalf("restore exit %d: %s", code, errOut.String())
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o600)
	testproc.WaitFile(t, filepath.Join(dir, "checked"), 10*time.Second)
	for i := 0; i < 200; i++ {
		if b, _ := os.ReadFile(filepath.Join(dir, "checked")); len(b) > 0 {
			if string(b) != "empty" {
				t.Fatalf("the restored socket's queue is %s, want empty", b)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 400; i++ {
		c.Write([]byte("after"))
		if b, _ := os.ReadFile(filepath.Join(dir, "got")); len(b) > 0 {
			if string(b) != "after" {
				t.Fatalf("the restored socket got %q, want after", b)
			}
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("the restored socket never got the next datagram")
}
