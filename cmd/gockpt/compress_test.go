package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	compressedOnWire = regexp.MustCompile(`; compressed \(zstd\): ([0-9.]+) MiB on the wire\n`)
	servedCompressed = regexp.MustCompile(`Served (\d+) pages \([0-9.]+ MiB\) in \d+ requests to 127\.0\.0\.1:\d+ in [^,]+, of \d+ lazy pages in the images; compressed \(zstd\): ([0-9.]+) MiB on the wire\n`)
)

// TestPageServerCompress: dump --page-server --compress to gockpt's page
// server, plain and over TLS: the page server says how little went over
// the wire, and the restored process finds its memory right.
func TestPageServerCompress(t *testing.T) {
	srvTLS, cliTLS := testTLSFlags(t)
	for _, useTLS := range []bool{false, true} {
		var serverTLS, clientTLS []string
		if useTLS {
			serverTLS, clientTLS = srvTLS, cliTLS
		}
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			p, pdir := startPattern(t)
			pid := strconv.Itoa(p.Pid)
			sdir := filepath.Join(t.TempDir(), "srv")
			ps := startGockptPageServer(t, sdir, serverTLS...)
			imgs := filepath.Join(t.TempDir(), "img")
			args := append(append([]string{"dump", "-t", pid, "-D", imgs, "--compress"}, ps.flags()...), clientTLS...)
			var out, errOut bytes.Buffer
			if code := run(args, &out, &errOut); code != 0 {
				t.Fatalf("dump: exit %d: %s", code, errOut.String())
			}
			psOut := ps.wait(t)
			m := compressedOnWire.FindStringSubmatch(psOut)
			if m == nil {
				t.Fatalf("page server output: %s", psOut)
			}
			// 64 MiB of pages each holding one byte repeated.
			if mib, _ := strconv.ParseFloat(m[1], 64); mib > 8 {
				t.Fatalf("%s MiB on the wire: %s", m[1], psOut)
			}
			b, _ := os.ReadFile(filepath.Join(imgs, "dump.log"))
			if !regexp.MustCompile(`page server 127\.0\.0\.1:\d+: \d+ MiB of pages sent, compressed \(zstd\) to \d+ MiB on the wire`).Match(b) {
				t.Fatalf("dump.log does not say the pages were compressed:\n%s", lastLines(string(b), 10))
			}
			p.Cmd.Wait()
			waitPidsFree(t, []int{p.Pid})
			copyImages(t, imgs, sdir)
			gockpt(t, "restore", "-D", sdir, "-d")
			t.Cleanup(func() { killRestored(p.Pid) })
			verifyPattern(t, p.Pid, pdir)
		})
	}
}

// TestLazyPagesCompress: lazy-pages --page-server --compress fetches the
// lazy pages compressed from gockpt's page-server --lazy-pages, plain and
// over TLS, and the restored process finds its memory right.
func TestLazyPagesCompress(t *testing.T) {
	srvTLS, cliTLS := testTLSFlags(t)
	for _, useTLS := range []bool{false, true} {
		var serverTLS, clientTLS []string
		if useTLS {
			serverTLS, clientTLS = srvTLS, cliTLS
		}
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			p, pdir := startPattern(t)
			imgs := filepath.Join(t.TempDir(), "img")
			gockpt(t, "dump", "-t", strconv.Itoa(p.Pid), "-D", imgs)
			p.Cmd.Wait()
			waitPidsFree(t, []int{p.Pid})
			lazy := lazyPages(t, imgs, p.Pid)
			ps := startGockptPageServer(t, imgs, append([]string{"--lazy-pages"}, serverTLS...)...)
			args := append([]string{"--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(ps.port), "--compress"}, clientTLS...)
			ld := startLazyDaemon(t, imgs, filepath.Join(imgs, lazySocketName), args...)
			gockpt(t, "restore", "-D", imgs, "--lazy-pages", "-d")
			t.Cleanup(func() { killRestored(p.Pid) })
			verifyPattern(t, p.Pid, pdir)
			if out := ld.wait(t, 60*time.Second); !lazySummary.MatchString(out) {
				t.Fatalf("lazy-pages: %s", out)
			}
			ps.wait(t)
			var m []string
			pollUntil(t, 10*time.Second, func() (bool, string) {
				m = servedCompressed.FindStringSubmatch(ps.out.String())
				return m != nil, "the page server does not say what it served: " + ps.out.String()
			})
			if n, _ := strconv.ParseUint(m[1], 10, 64); n < lazy {
				t.Fatalf("the page server served %s pages of %d lazy: %s", m[1], lazy, ps.out)
			}
			// Pages each holding one byte repeated: under a KiB a page.
			if mib, _ := strconv.ParseFloat(m[2], 64); mib*(1<<20) > float64(lazy)*1024 {
				t.Fatalf("%s MiB on the wire for %d pages: %s", m[2], lazy, ps.out)
			}
		})
	}
}

// TestCompressUsage: --compress without a page server, with dump
// --lazy-pages, and against CRIU's page server (receiving and lazy),
// which cannot take it.
func TestCompressUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dump", "-t", "12345", "-D", t.TempDir(), "--compress"},
			"Error: --compress compresses the page server connection: add --page-server --address A --port N\n"},
		{[]string{"pre-dump", "-t", "12345", "-D", t.TempDir(), "--compress"},
			"Error: --compress compresses the page server connection: add --page-server --address A --port N\n"},
		{[]string{"dump", "-t", "12345", "-D", t.TempDir(), "--lazy-pages", "--port", "0", "--compress"},
			"Error: --compress is asked for by the destination (lazy-pages --page-server --compress): drop it here, the dump compresses what that daemon asks it to\n"},
		{[]string{"lazy-pages", "-D", t.TempDir(), "--compress"},
			"Error: --compress asks a page server for compressed pages: add --page-server --address A --port N\n"},
	} {
		var out, errOut bytes.Buffer
		if code := run(c.args, &out, &errOut); code == 0 || !strings.HasPrefix(errOut.String(), c.want) {
			t.Errorf("%v: exit %d: %s\nwant %q", c.args, code, errOut.String(), c.want)
		}
	}
}

// TestCompressCRIUPageServer: dump --compress and lazy-pages --compress
// against CRIU 4.2's page servers fail at once, saying to drop --compress,
// and the dumped tree runs on. Skipped without $GOCKPT_TEST_CRIU.
func TestCompressCRIUPageServer(t *testing.T) {
	criu := os.Getenv("GOCKPT_TEST_CRIU")
	if criu == "" {
		t.Skip("GOCKPT_TEST_CRIU names no CRIU binary")
	}
	p, pdir := startSmallPattern(t)
	pid := strconv.Itoa(p.Pid)

	// Receiving.
	port := freePort(t, "127.0.0.1")
	cdir := filepath.Join(t.TempDir(), "criu-ps")
	os.Mkdir(cdir, 0o700)
	_, done := startCRIU(t, criu, "page-server", "-D", cdir, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "-o", "ps.log", "-v4")
	pollUntil(t, 10*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(cdir, "ps.log"))
		return bytes.Contains(b, []byte("Starting page server")), "CRIU's page server does not start"
	})
	want := fmt.Sprintf("Error: the page server at 127.0.0.1:%d does not take --compress (a CRIU page server?): drop --compress\n", port)
	var out, errOut bytes.Buffer
	imgs := filepath.Join(t.TempDir(), "img")
	if code := run([]string{"dump", "-t", pid, "-D", imgs, "--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--compress"}, &out, &errOut); code != 1 || !strings.HasPrefix(errOut.String(), want) {
		t.Fatalf("dump: exit %d: %q\nwant %q", code, errOut.String(), want)
	}
	if err := waitExit(t, done, "CRIU's page server", filepath.Join(cdir, "ps.log")); err == nil {
		t.Fatal("CRIU's page server exited 0")
	}
	verifyPattern(t, p.Pid, pdir)

	// Lazy: the images of a dump, served by CRIU.
	gockpt(t, "dump", "-t", pid, "-D", imgs)
	p.Cmd.Wait()
	port, done = startCRIUPageServer(t, criu, imgs, "ps.log", nil)
	want = fmt.Sprintf("Error: the page server at 127.0.0.1:%d does not take --compress (a CRIU page server?): drop --compress\n", port)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"lazy-pages", "-D", imgs, "--page-server", "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--compress"}, &out, &errOut); code != 1 || !strings.HasPrefix(errOut.String(), want) {
		t.Fatalf("lazy-pages: exit %d: %q\nwant %q", code, errOut.String(), want)
	}
	if err := waitExit(t, done, "CRIU's page server", filepath.Join(imgs, "ps.log")); err == nil {
		t.Fatal("CRIU's lazy page server exited 0")
	}
	b, _ := os.ReadFile(filepath.Join(imgs, "ps.log"))
	if !bytes.Contains(b, []byte("Unknown command")) {
		t.Fatalf("CRIU's log does not say why:\n%s", lastLines(string(b), 10))
	}
}
