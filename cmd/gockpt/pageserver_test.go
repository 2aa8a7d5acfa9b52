package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/testpki"
	"github.com/gockpt/gockpt/internal/testproc"
)

// patternScript keeps 64 MiB whose every page holds a known byte, changes
// one page every 20 ms (remembering which), and on SIGUSR1 checks every
// page and writes "ok N" (N: pages changed so far) or what differs to
// DIR/verified.
const patternScript = `import os, signal, sys, time
d = sys.argv[1]
N = 16384
buf = bytearray(N * 4096)
for i in range(N):
    buf[i*4096:(i+1)*4096] = bytes([i % 251]) * 4096
mods = {}
gen = 0
def verify(*_):
    bad = [i for i in range(N) if buf[i*4096:(i+1)*4096] != bytes([mods.get(i, i % 251)]) * 4096]
    with open(d + "/verified.tmp", "w") as f:
        f.write("ok %d" % gen if not bad else "bad pages %s" % bad[:10])
    os.rename(d + "/verified.tmp", d + "/verified")
signal.signal(signal.SIGUSR1, verify)
open(d + "/ready", "w").close()
while True:
    # The check must never see a page and its record half-way.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    gen += 1
    p = (gen * 7919) % N
    mods[p] = gen % 256
    buf[p*4096:(p+1)*4096] = bytes([gen % 256]) * 4096
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
    time.sleep(0.02)
`

// startPattern starts patternScript; it returns the process and its
// directory.
func startPattern(t *testing.T) (*testproc.Proc, string) {
	t.Helper()
	py := program(t, "python3")
	dir := t.TempDir()
	p := testproc.Start(t, py, "-c", patternScript, dir)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 20*time.Second)
	return p, dir
}

// verifyPattern has the (restored) process check its memory.
func verifyPattern(t *testing.T, pid int, dir string) {
	t.Helper()
	os.Remove(filepath.Join(dir, "verified"))
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	testproc.WaitFile(t, filepath.Join(dir, "verified"), 20*time.Second)
	b, _ := os.ReadFile(filepath.Join(dir, "verified"))
	if !strings.HasPrefix(string(b), "ok ") {
		t.Fatalf("process %d after restore: %s", pid, b)
	}
}

// pageServer is a page server running as a child process.
type pageServer struct {
	cmd  *exec.Cmd
	port int
	out  *bytes.Buffer
	done chan error
}

var listening = regexp.MustCompile(`page server listening on 127\.0\.0\.1:(\d+)`)

// startGockptPageServer runs `gockpt page-server` (this test binary as
// gockpt) on port 0 and waits until it listens.
func startGockptPageServer(t *testing.T, dir string, args ...string) *pageServer {
	t.Helper()
	args = append([]string{"page-server", "-D", dir, "--address", "127.0.0.1", "--port", "0", "-v4"}, args...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "GOCKPT_TEST_AS_GOCKPT=1")
	pr, pw := io.Pipe()
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ps := &pageServer{cmd: cmd, out: out, done: make(chan error, 1)}
	t.Cleanup(func() { ps.stop() })
	go func() { ps.done <- cmd.Wait(); pw.Close() }()
	portc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				p, _ := strconv.Atoi(m[1])
				portc <- p
			}
		}
		close(portc)
	}()
	select {
	case p, ok := <-portc:
		if !ok {
			t.Fatalf("page server exited: %s", out)
		}
		ps.port = p
	case <-time.After(20 * time.Second):
		t.Fatalf("page server does not listen: %s", out)
	}
	return ps
}

func (ps *pageServer) stop() {
	if ps.cmd.ProcessState == nil {
		ps.cmd.Process.Kill()
	}
	select {
	case <-ps.done:
	case <-time.After(10 * time.Second):
	}
}

// wait waits for the page server to exit after its session.
func (ps *pageServer) wait(t *testing.T) string {
	t.Helper()
	select {
	case err := <-ps.done:
		ps.done <- err
		time.Sleep(10 * time.Millisecond) // the output's last line
		if err != nil {
			t.Fatalf("page server: %v: %s", err, ps.out)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("page server still runs after the session: %s", ps.out)
	}
	return ps.out.String()
}

func (ps *pageServer) flags() []string {
	return []string{"--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(ps.port)}
}

// copyImages copies the images of src into dst (the dump's images into the
// page server's directory, as a migration would).
func copyImages(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

var leftInParent = regexp.MustCompile(`; (\d+) pages left in the parent images`)

// TestPageServerPreDumpChain: two pre-dumps and a final dump, each
// sending its pages to a page server of its own that chains to the one
// before (--prev-images-dir), as a migration does. Unchanged pages stay in
// the parent on the server's side; the final images, with the dump's own
// images copied next to the server's, restore the process with every page
// right.
func TestPageServerPreDumpChain(t *testing.T) {
	p, pdir := startPattern(t)
	pid := strconv.Itoa(p.Pid)
	src, dst := t.TempDir(), t.TempDir()
	iters := []string{"pre1", "pre2", "final"}
	for i, it := range iters {
		var prev []string
		if i > 0 {
			prev = []string{"--prev-images-dir", "../" + iters[i-1]}
		}
		ps := startGockptPageServer(t, filepath.Join(dst, it), prev...)
		cmd := "pre-dump"
		if it == "final" {
			cmd = "dump"
		}
		args := append(append([]string{cmd, "-t", pid, "-D", filepath.Join(src, it), "--track-mem"}, prev...), ps.flags()...)
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 0 {
			t.Fatalf("%s: exit %d: %s", cmd, code, errOut.String())
		}
		psOut := ps.wait(t)
		m := leftInParent.FindStringSubmatch(psOut)
		if m == nil {
			t.Fatalf("page server output: %s", psOut)
		}
		if n, _ := strconv.Atoi(m[1]); i > 0 && n == 0 {
			t.Fatalf("%s: no page left in the parent images: the chain was not incremental: %s", it, psOut)
		}
		for _, name := range []string{"pagemap-" + pid + ".img"} {
			if _, err := os.Stat(filepath.Join(src, it, name)); err == nil {
				t.Fatalf("%s: %s written on the dumping side", it, name)
			}
			if _, err := os.Stat(filepath.Join(dst, it, name)); err != nil {
				t.Fatalf("%s: the page server did not write %s: %v", it, name, err)
			}
		}
		time.Sleep(100 * time.Millisecond) // the process writes on
	}
	p.Cmd.Wait()
	waitPidsFree(t, []int{p.Pid})
	final := filepath.Join(dst, "final")
	copyImages(t, filepath.Join(src, "final"), final)
	gockpt(t, "restore", "-D", final, "-d")
	t.Cleanup(func() { killRestored(p.Pid) })
	verifyPattern(t, p.Pid, pdir)
}

// TestPageServerRefusals: no server listening, or a server that dies
// during the dump: the dump fails with the reason, and the tree runs on as
// it was, never left frozen.
func TestPageServerRefusals(t *testing.T) {
	p, pdir := startPattern(t)
	pid := strconv.Itoa(p.Pid)

	port := freePort(t, "127.0.0.1")
	imgs := filepath.Join(t.TempDir(), "img")
	var out, errOut bytes.Buffer
	code := run([]string{"dump", "-t", pid, "-D", imgs, "--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(port)}, &out, &errOut)
	want := fmt.Sprintf("page server 127.0.0.1:%d: dial tcp 127.0.0.1:%d: connect: connection refused: is `gockpt page-server` (or `criu page-server`) listening there?", port, port)
	if code != 1 || !strings.Contains(errOut.String(), want) {
		t.Fatalf("dump without a server: exit %d: %s\nwant %q", code, errOut.String(), want)
	}
	if ents, _ := os.ReadDir(imgs); len(ents) != 1 || ents[0].Name() != "dump.log" {
		t.Fatalf("the refused dump left %v in its images directory, want only its log", ents)
	}

	// A server stopped before the dump, killed once the tree is frozen.
	sdir := filepath.Join(t.TempDir(), "srv")
	ps := startGockptPageServer(t, sdir)
	syscall.Kill(ps.cmd.Process.Pid, syscall.SIGSTOP)
	res := make(chan string, 1)
	go func() {
		var out, errOut bytes.Buffer
		code := run(append([]string{"dump", "-t", pid, "-D", imgs, "--leave-running"}, ps.flags()...), &out, &errOut)
		res <- fmt.Sprintf("exit %d: %s", code, errOut.String())
	}()
	// Seized: traced (its state may read S while the parasite waits).
	pollUntil(t, 20*time.Second, func() (bool, string) {
		select {
		case got := <-res:
			t.Fatalf("dump to a stopped page server ended: %s", got)
		default:
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
		return !bytes.Contains(b, []byte("TracerPid:\t0\n")), "the tree is not seized"
	})
	ps.cmd.Process.Kill()
	got := <-res
	// The server died with the connection not accepted yet: the kernel
	// resets it.
	want = fmt.Sprintf("exit 1: Error: page server 127.0.0.1:%d: the connection broke (", ps.port)
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "): the page server died or gave up the session: see its log") {
		t.Fatalf("dump whose server died: %s\nwant %q", got, want)
	}
	pollUntil(t, 10*time.Second, func() (bool, string) {
		st, err := proc.ReadStat(p.Pid)
		return err == nil && st.State != 't' && st.State != 'T', "the tree stays stopped"
	})
	if ents, _ := os.ReadDir(sdir); len(ents) > 1 {
		t.Fatalf("the dead server's directory holds %v", ents)
	}
	verifyPattern(t, p.Pid, pdir)
}

// TestPageServerDaemon: --daemon returns once the server listens, with its
// PID in --pidfile; it serves one session and exits.
func TestPageServerDaemon(t *testing.T) {
	p, pdir := startPattern(t)
	dir := t.TempDir()
	sdir, pidfile := filepath.Join(dir, "srv"), filepath.Join(dir, "ps.pid")
	cmd := exec.Command(os.Args[0], "page-server", "-D", sdir, "--address", "127.0.0.1", "--port", "0", "--daemon", "--pidfile", pidfile)
	cmd.Env = append(os.Environ(), "GOCKPT_TEST_AS_GOCKPT=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("page-server --daemon: %v: %s", err, out)
	}
	m := regexp.MustCompile(`^page server listening on 127\.0\.0\.1:(\d+) \(PID (\d+)\)\n$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("page-server --daemon said %q", out)
	}
	dpid, _ := strconv.Atoi(m[2])
	t.Cleanup(func() { syscall.Kill(dpid, syscall.SIGKILL) })
	if b, _ := os.ReadFile(pidfile); string(b) != m[2]+"\n" {
		t.Fatalf("pidfile holds %q, want %q", b, m[2]+"\n")
	}
	imgs := filepath.Join(dir, "img")
	gockpt(t, "dump", "-t", strconv.Itoa(p.Pid), "-D", imgs, "--page-server", "--address", "127.0.0.1", "--port", m[1])
	pollUntil(t, 10*time.Second, func() (bool, string) { return !testproc.Alive(dpid), "the daemon runs on after its session" })
	p.Cmd.Wait()
	waitPidsFree(t, []int{p.Pid})
	copyImages(t, imgs, sdir)
	gockpt(t, "restore", "-D", sdir, "-d")
	t.Cleanup(func() { killRestored(p.Pid) })
	verifyPattern(t, p.Pid, pdir)
}

// testTLSFlags makes a CA with a server certificate for 127.0.0.1 and a
// client one, and returns the TLS flags of each side.
func testTLSFlags(t *testing.T) (server, client []string) {
	t.Helper()
	ca := testpki.New(t, "gockpt test CA")
	srvCert, srvKey := ca.Issue(t, "server", "127.0.0.1")
	cliCert, cliKey := ca.Issue(t, "client", "client")
	return []string{"--tls", "--tls-cacert", ca.CA(), "--tls-cert", srvCert, "--tls-key", srvKey},
		[]string{"--tls", "--tls-cacert", ca.CA(), "--tls-cert", cliCert, "--tls-key", cliKey}
}

// TestPageServerCRIU: CRIU 4.2's page server receives gockpt's pages and
// gockpt's page server receives CRIU's, plain and over TLS with the same
// certificates; gockpt restores each. Skipped without $GOCKPT_TEST_CRIU
// (.ci/run sets it).
func TestPageServerCRIU(t *testing.T) {
	criu := os.Getenv("GOCKPT_TEST_CRIU")
	if criu == "" {
		t.Skip("GOCKPT_TEST_CRIU names no CRIU binary")
	}
	srvTLS, cliTLS := testTLSFlags(t)
	for _, useTLS := range []bool{false, true} {
		var serverTLS, clientTLS []string
		if useTLS {
			serverTLS, clientTLS = srvTLS, cliTLS
		}
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			p, pdir := startPattern(t)
			pid := strconv.Itoa(p.Pid)
			dir := t.TempDir()

			// CRIU's page server, gockpt's dump.
			port := freePort(t, "127.0.0.1")
			cdir := filepath.Join(dir, "criu-ps")
			os.Mkdir(cdir, 0o700)
			ps := exec.Command(criu, append([]string{"page-server", "-D", cdir, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "-o", "ps.log", "-v4"}, serverTLS...)...)
			if err := ps.Start(); err != nil {
				t.Fatal(err)
			}
			psDone := make(chan error, 1)
			go func() { psDone <- ps.Wait() }()
			t.Cleanup(func() { ps.Process.Kill(); <-psDone; psDone <- nil })
			pollUntil(t, 10*time.Second, func() (bool, string) {
				b, _ := os.ReadFile(filepath.Join(cdir, "ps.log"))
				return bytes.Contains(b, []byte("Starting page server")), "CRIU's page server does not start"
			})
			imgs := filepath.Join(dir, "img")
			gockpt(t, append([]string{"dump", "-t", pid, "-D", imgs, "--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--leave-running"}, clientTLS...)...)
			if err := <-psDone; err != nil {
				b, _ := os.ReadFile(filepath.Join(cdir, "ps.log"))
				t.Fatalf("CRIU's page server: %v\n%s", err, b)
			}
			psDone <- nil
			testproc.KillTree(p.Pid)
			p.Cmd.Wait()
			waitPidsFree(t, []int{p.Pid})
			copyImages(t, imgs, cdir)
			gockpt(t, "restore", "-D", cdir, "-d")
			verifyPattern(t, p.Pid, pdir)

			// gockpt's page server, CRIU's dump of the restored process.
			gdir := filepath.Join(dir, "gockpt-ps")
			gps := startGockptPageServer(t, gdir, serverTLS...)
			imgs2 := filepath.Join(dir, "img2")
			os.Mkdir(imgs2, 0o700)
			cargs := append([]string{"dump", "-t", pid, "-D", imgs2, "--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(gps.port), "-o", "dump.log", "-v4"}, clientTLS...)
			if out, err := exec.Command(criu, cargs...).CombinedOutput(); err != nil {
				b, _ := os.ReadFile(filepath.Join(imgs2, "dump.log"))
				t.Fatalf("CRIU dump to gockpt's page server: %v: %s\n%s", err, out, lastLines(string(b), 20))
			}
			if out := gps.wait(t); !strings.Contains(out, "Received ") {
				t.Fatalf("gockpt's page server: %s", out)
			}
			// CRIU killed it; the restored root is this process's child.
			var ws syscall.WaitStatus
			syscall.Wait4(p.Pid, &ws, 0, nil)
			waitPidsFree(t, []int{p.Pid})
			copyImages(t, imgs2, gdir)
			gockpt(t, "restore", "-D", gdir, "-d")
			t.Cleanup(func() { killRestored(p.Pid) })
			verifyPattern(t, p.Pid, pdir)
		})
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
