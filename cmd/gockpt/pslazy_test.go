package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/pageserver"
	"github.com/gockpt/gockpt/internal/testpki"
	"github.com/gockpt/gockpt/internal/testproc"
)

// startCRIU runs CRIU in the background and kills it (by PID) at the end
// of the test; the channel gives its exit.
func startCRIU(t *testing.T, criu string, args ...string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(criu, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out.String())
		}
		done <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case err := <-done:
			done <- err
		case <-time.After(10 * time.Second):
		}
	})
	return cmd, done
}

// waitExit waits for a CRIU started by startCRIU to exit, and returns
// how it did.
func waitExit(t *testing.T, done chan error, what, log string) error {
	t.Helper()
	select {
	case err := <-done:
		done <- err
		return err
	case <-time.After(60 * time.Second):
		b, _ := os.ReadFile(log)
		t.Fatalf("%s runs on: %s", what, lastLines(string(b), 20))
	}
	return nil
}

// startCRIUPageServer runs `criu page-server --lazy-pages` on imgs and
// waits until it listens.
func startCRIUPageServer(t *testing.T, criu, imgs, logName string, tlsArgs []string) (int, chan error) {
	t.Helper()
	port := freePort(t, "127.0.0.1")
	_, done := startCRIU(t, criu, append([]string{"page-server", "--lazy-pages", "-D", imgs, "--address", "127.0.0.1",
		"--port", strconv.Itoa(port), "-o", logName, "-v4"}, tlsArgs...)...)
	pollUntil(t, 20*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			b, _ := os.ReadFile(filepath.Join(imgs, logName))
			t.Fatalf("CRIU's page server exited: %v\n%s", err, lastLines(string(b), 20))
		default:
		}
		b, _ := os.ReadFile(filepath.Join(imgs, logName))
		return bytes.Contains(b, []byte("Starting page server")), "CRIU's page server does not start"
	})
	return port, done
}

// startSmallPattern is startPattern with 16 MiB: CRIU's page server puts
// every page of the images in pipes, and a user's pipes may hold only
// fs.pipe-user-pages-soft pages (64 MiB) without CAP_SYS_RESOURCE: past
// that it fails ("tee: 65536: Operation not permitted").
func startSmallPattern(t *testing.T) (*testproc.Proc, string) {
	t.Helper()
	py := program(t, "python3")
	dir := t.TempDir()
	script := strings.Replace(patternScript, "N = 16384\n", "N = 4096\n", 1)
	if script == patternScript {
		t.Fatal("patternScript has no N = 16384 line")
	}
	p := testproc.Start(t, py, "-c", script, dir)
	t.Cleanup(func() { testproc.KillTree(p.Pid) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 20*time.Second)
	return p, dir
}

// criuLazyServerCan says why CRIU's lazy page server cannot serve here:
// it reads each answer through a pipe it enlarges to 819 pages (3.2 MiB),
// and without CAP_SYS_RESOURCE that needs fs.pipe-max-size as large; with
// a smaller pipe it fails every request reaching past its first 64 KiB
// ("tee: 65536: Operation not permitted").
func criuLazyServerCan() error {
	const need = 819 * pagemap.PageSize
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return err
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n < need {
		return fmt.Errorf("fs.pipe-max-size is %d: CRIU's page server --lazy-pages needs %d (or CAP_SYS_RESOURCE) to serve", n, need)
	}
	return nil
}

// lazyPages counts the lazy pages of task pid in imgs.
func lazyPages(t *testing.T, imgs string, pid int) uint64 {
	t.Helper()
	dir, err := images.OpenDir(imgs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pagemap.Open(dir, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n uint64
	for _, e := range r.Entries() {
		if e.Flags&pagemap.FlagLazy != 0 {
			n += e.NrPages
		}
	}
	if n == 0 {
		t.Fatal("the dump marked no page lazy")
	}
	return n
}

var served = regexp.MustCompile(`Served (\d+) pages \([0-9.]+ MiB\) in (\d+) requests to 127\.0\.0\.1:\d+ in [^,]+, of (\d+) lazy pages in the images\n`)

// TestLazyPagesCRIU: post-copy with CRIU 4.2, plain and over TLS. A
// process dumped by gockpt (its private anonymous pages marked lazy):
//   - gockpt's Client fetches every lazy page from `criu page-server
//     --lazy-pages` serving the images, each as the images hold it; a page
//     CRIU has no lazy data for ends CRIU's session;
//   - `criu restore --lazy-pages` restores it, its lazy-pages daemon
//     fetching the pages from `gockpt page-server --lazy-pages`, and the
//     restored process finds its memory right.
//
// Skipped without $GOCKPT_TEST_CRIU (.ci/run sets it).
func TestLazyPagesCRIU(t *testing.T) {
	criu := os.Getenv("GOCKPT_TEST_CRIU")
	if criu == "" {
		t.Skip("GOCKPT_TEST_CRIU names no CRIU binary")
	}
	ca := testpki.New(t, "gockpt test CA")
	srvCert, srvKey := ca.Issue(t, "server", "127.0.0.1")
	cliCert, cliKey := ca.Issue(t, "client", "client")
	for _, useTLS := range []bool{false, true} {
		var serverTLS, clientTLS []string
		clientOpts := pageserver.TLS{Enabled: useTLS, CACert: ca.CA(), Cert: cliCert, Key: cliKey}
		if useTLS {
			serverTLS = []string{"--tls", "--tls-cacert", ca.CA(), "--tls-cert", srvCert, "--tls-key", srvKey}
			clientTLS = []string{"--tls", "--tls-cacert", ca.CA(), "--tls-cert", cliCert, "--tls-key", cliKey}
		}
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			p, pdir := startSmallPattern(t)
			pid := p.Pid
			imgs := filepath.Join(t.TempDir(), "img")
			gockpt(t, "dump", "-t", strconv.Itoa(pid), "-D", imgs)
			p.Cmd.Wait()
			waitPidsFree(t, []int{pid})

			t.Run("gockpt client, criu page-server", func(t *testing.T) {
				if err := criuLazyServerCan(); err != nil {
					t.Skip(err)
				}
				tc, err := clientOpts.ClientConfig("127.0.0.1")
				if err != nil {
					t.Fatal(err)
				}
				port, done := startCRIUPageServer(t, criu, imgs, "ps.log", serverTLS)
				fetchAllLazy(t, pageserver.Addr("127.0.0.1", port), tc, imgs, pid, filepath.Join(imgs, "ps.log"))
				if err := waitExit(t, done, "CRIU's page server", filepath.Join(imgs, "ps.log")); err != nil {
					t.Fatalf("CRIU's page server: %v", err)
				}
				// A page it holds no lazy data for: CRIU ends the session.
				port, done = startCRIUPageServer(t, criu, imgs, "ps2.log", serverTLS)
				c, err := pageserver.Dial(pageserver.Addr("127.0.0.1", port), tc)
				if err != nil {
					t.Fatal(err)
				}
				_, err = c.Get(pid, 0x1000, 1, make([]byte, pagemap.PageSize))
				c.Abort()
				want := fmt.Sprintf("page server 127.0.0.1:%d: closed the connection instead of answering the request for task %d's pages at 0x1000: see its log", port, pid)
				if err == nil || err.Error() != want {
					t.Fatalf("Get of a page CRIU does not have: %v\nwant %q", err, want)
				}
				if err := waitExit(t, done, "CRIU's page server", filepath.Join(imgs, "ps2.log")); err == nil {
					t.Fatal("CRIU's page server exited 0 after a request it could not answer")
				}
			})

			// CRIU's lazy restore, gockpt's page server.
			lazy := lazyPages(t, imgs, pid)
			ps := startGockptPageServer(t, imgs, append([]string{"--lazy-pages"}, serverTLS...)...)
			lazyDone := lazyRestore(t, criu, imgs, ps.port, clientTLS, "")
			t.Cleanup(func() { killRestored(pid) })
			verifyPattern(t, pid, pdir)
			if err := waitExit(t, lazyDone, "CRIU's lazy-pages daemon", filepath.Join(imgs, "lazy-pages.log")); err != nil {
				b, _ := os.ReadFile(filepath.Join(imgs, "lazy-pages.log"))
				t.Fatalf("CRIU's lazy-pages daemon: %v\n%s", err, lastLines(string(b), 20))
			}
			psOut := ps.wait(t)
			m := served.FindStringSubmatch(psOut)
			if m == nil {
				t.Fatalf("gockpt's page server said: %s", psOut)
			}
			if n, _ := strconv.ParseUint(m[1], 10, 64); n < lazy {
				t.Fatalf("gockpt's page server served %s pages of the %d lazy ones: %s", m[1], lazy, psOut)
			}
			if m[3] != strconv.FormatUint(lazy, 10) {
				t.Fatalf("gockpt's page server counts %s lazy pages, the images %d", m[3], lazy)
			}
			b, _ := os.ReadFile(filepath.Join(imgs, "lazy-pages.log"))
			if want := fmt.Sprintf("UFFD transferred pages: (%d/%d)", lazy, lazy); !bytes.Contains(b, []byte(want)) {
				t.Fatalf("CRIU's lazy-pages daemon did not say %q:\n%s", want, lastLines(string(b), 10))
			}

			// Again from a page server whose images have the largest run
			// not lazy: asked for it, gockpt's server answers 0 pages and
			// ends the session, and CRIU's daemon fails (it would wait
			// for ever after a 0-page answer alone).
			killRestored(pid)
			waitPidsFree(t, []int{pid})
			srv := filepath.Join(t.TempDir(), "img")
			big := notLazyCopy(t, imgs, srv, pid)
			ps = startGockptPageServer(t, srv, append([]string{"--lazy-pages"}, serverTLS...)...)
			lazyDone = lazyRestore(t, criu, imgs, ps.port, clientTLS, "2")
			if err := waitExit(t, lazyDone, "CRIU's lazy-pages daemon", filepath.Join(imgs, "lazy-pages2.log")); err == nil {
				t.Fatal("CRIU's lazy-pages daemon exited 0 after a request the page server could not answer")
			}
			b, _ = os.ReadFile(filepath.Join(imgs, "lazy-pages2.log"))
			// Which error depends on what it sees first: the 0 pages
			// (plain), a read of 0 bytes GnuTLS refuses (TLS), or the end.
			if !regexp.MustCompile(`copy: mcopy_rc:0: Invalid argument|Error reading data from page server|Remote side closed connection`).Match(b) {
				t.Fatalf("CRIU's lazy-pages daemon failed otherwise:\n%s", lastLines(string(b), 10))
			}
			var exit error
			select {
			case exit = <-ps.done:
				ps.done <- exit
			case <-time.After(30 * time.Second):
				t.Fatalf("gockpt's page server runs on: %s", ps.out)
			}
			time.Sleep(10 * time.Millisecond) // the output's last line
			want := regexp.MustCompile(`\nError: page server: lazy session with 127\.0\.0\.1:\d+: asked for \d+ pages at 0x[0-9a-f]+: task ` + strconv.Itoa(pid) +
				`: page 0x[0-9a-f]+ of run ` + regexp.QuoteMeta(big.String()) + ` is not lazy: restore puts it in place itself: answered 0 pages and ended the session\n`)
			if exit == nil || !want.MatchString(ps.out.String()) {
				t.Fatalf("gockpt's page server: %v: %s", exit, ps.out)
			}
		})
	}
}

// lazyRestore starts CRIU's lazy-pages daemon on imgs, fetching from the
// page server on port, and has CRIU restore the images lazily; suffix
// tells its logs apart. The channel gives the daemon's exit.
func lazyRestore(t *testing.T, criu, imgs string, port int, tlsArgs []string, suffix string) chan error {
	t.Helper()
	sock := filepath.Join(imgs, "lazy-pages.socket")
	os.Remove(sock)
	_, done := startCRIU(t, criu, append([]string{"lazy-pages", "-D", imgs, "--page-server", "--address", "127.0.0.1",
		"--port", strconv.Itoa(port), "-o", "lazy-pages" + suffix + ".log", "-v4"}, tlsArgs...)...)
	pollUntil(t, 20*time.Second, func() (bool, string) {
		_, err := os.Stat(sock)
		return err == nil, "CRIU's lazy-pages daemon does not listen"
	})
	out, err := exec.Command(criu, "restore", "-D", imgs, "--lazy-pages", "-d", "-o", "restore"+suffix+".log", "-v4").CombinedOutput()
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(imgs, "restore"+suffix+".log"))
		t.Fatalf("criu restore --lazy-pages: %v: %s\n%s", err, out, lastLines(string(b), 20))
	}
	return done
}

// notLazyCopy copies the images of imgs into dst with the largest lazy run
// of task pid no longer lazy, and returns that run.
func notLazyCopy(t *testing.T, imgs, dst string, pid int) pagemap.Entry {
	t.Helper()
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	copyImages(t, imgs, dst)
	name := filepath.Join(dst, images.PagemapFile(pid))
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	id, ents, err := pagemap.Parse(f, name)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	big := -1
	for i, e := range ents {
		if e.Flags&pagemap.FlagLazy != 0 && (big < 0 || e.NrPages > ents[big].NrPages) {
			big = i
		}
	}
	if big < 0 {
		t.Fatal("the dump marked no page lazy")
	}
	ents[big].Flags &^= pagemap.FlagLazy
	dir, err := images.OpenDir(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := pagemap.WriteEntries(dir, pid, id, ents); err != nil {
		t.Fatal(err)
	}
	return ents[big]
}

// fetchAllLazy fetches every lazy page of task pid from the page server at
// addr and checks it against the images; it closes the session.
func fetchAllLazy(t *testing.T, addr string, tc *tls.Config, imgs string, pid int, logPath string) {
	t.Helper()
	dir, err := images.OpenDir(imgs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pagemap.Open(dir, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := pageserver.Dial(addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	const most = 300 // not a power of two: answers end inside runs, too
	buf := make([]byte, most*pagemap.PageSize)
	want := make([]byte, len(buf))
	var total, requests uint64
	for _, e := range r.Entries() {
		if e.Flags&pagemap.FlagLazy == 0 {
			continue
		}
		for a := e.Vaddr; a < e.End(); {
			nr := min((e.End()-a)/pagemap.PageSize, most)
			n, err := c.Get(pid, a, nr, buf)
			if err != nil {
				c.Abort()
				b, _ := os.ReadFile(logPath)
				t.Fatalf("Get(%d, %#x, %d): %v\n%s", pid, a, nr, err, lastLines(string(b), 30))
			}
			requests++
			data := buf[:n*pagemap.PageSize]
			if err := r.ReadAt(want[:len(data)], a); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, want[:len(data)]) {
				c.Abort()
				t.Fatalf("task %d: pages %#x-%#x from the page server differ from the images", pid, a, a+uint64(len(data)))
			}
			a += uint64(len(data))
			total += n
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if want := lazyPages(t, imgs, pid); total != want {
		t.Fatalf("fetched %d pages of the %d lazy ones", total, want)
	}
	t.Logf("fetched %d lazy pages in %d requests", total, requests)
}

// TestLazyPageServerCommand: `gockpt page-server --lazy-pages` serves the
// lazy pages of an images directory for one session, and exits 1 when a
// request named pages it has no lazy data for.
func TestLazyPageServerCommand(t *testing.T) {
	imgs := t.TempDir()
	dir, err := images.OpenDir(imgs)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pagemap.Create(dir, 4242, 1)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 3*pagemap.PageSize)
	if err := w.Add(pagemap.Entry{Vaddr: 0x10000, NrPages: 3, Flags: pagemap.FlagPresent | pagemap.FlagLazy}, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(pagemap.Entry{Vaddr: 0x20000, NrPages: 1, Flags: pagemap.FlagPresent}, data[:pagemap.PageSize]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	for _, refuse := range []bool{false, true} {
		ps := startGockptPageServer(t, imgs, "--lazy-pages")
		c, err := pageserver.Dial(pageserver.Addr("127.0.0.1", ps.port), nil)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 8*pagemap.PageSize)
		if n, err := c.Get(4242, 0x11000, 8, buf); err != nil || n != 2 || !bytes.Equal(buf[:2*pagemap.PageSize], data[:2*pagemap.PageSize]) {
			t.Fatalf("Get: %d pages, %v", n, err)
		}
		if refuse {
			_, err := c.Get(4242, 0x20000, 1, buf)
			want := fmt.Sprintf("page server 127.0.0.1:%d: task 4242: no lazy pages at 0x20000: the server ended the session: see its log", ps.port)
			if err == nil || err.Error() != want {
				t.Fatalf("Get of a page that is not lazy: %v\nwant %q", err, want)
			}
			c.Abort()
		} else if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		var exit error
		select {
		case exit = <-ps.done:
			ps.done <- exit
		case <-time.After(20 * time.Second):
			t.Fatalf("the page server runs on after its session: %s", ps.out)
		}
		time.Sleep(10 * time.Millisecond) // the output's last line
		out := ps.out.String()
		if !refuse {
			if exit != nil || !regexp.MustCompile(`\nServed 2 pages \(0\.0 MiB\) in 1 requests to 127\.0\.0\.1:\d+ in .*, of 3 lazy pages in the images\n$`).MatchString(out) {
				t.Fatalf("page server: %v: %s", exit, out)
			}
			continue
		}
		want := regexp.MustCompile(`\nServed 2 pages \(0\.0 MiB\) in 2 requests to 127\.0\.0\.1:(\d+) in .*, of 3 lazy pages in the images\n` +
			`Error: page server: lazy session with 127\.0\.0\.1:(\d+): asked for 1 pages at 0x20000: task 4242: page 0x20000 of run 0x20000-0x21000 \(1 pages, PE_PRESENT\) is not lazy: restore puts it in place itself: answered 0 pages and ended the session\n`)
		if exit == nil || !want.MatchString(out) {
			t.Fatalf("page server: %v: %s", exit, out)
		}
	}

	// Usage and directory errors.
	var out, errOut bytes.Buffer
	if code := run([]string{"page-server", "--lazy-pages", "-D", t.TempDir(), "--port", "0", "--address", "127.0.0.1"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "holds no pagemap image: nothing to serve (-D names the images of a dump)") {
		t.Fatalf("empty directory: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"page-server", "--lazy-pages", "-D", imgs, "--port", "0", "--prev-images-dir", "../x"}, &out, &errOut); code != 1 ||
		!strings.HasPrefix(errOut.String(), "Error: --prev-images-dir is for receiving pages: --lazy-pages serves the images of -D (and their parents) as they are\n") {
		t.Fatalf("--prev-images-dir: exit %d: %s", code, errOut.String())
	}
}
