package dump

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/netlock"
	"github.com/gockpt/gockpt/internal/testproc"
)

// TestFailedTCPDumpUnlocks: a --tcp-established dump that fails after the
// network lock was taken (here, once every task's images are written)
// lifts the lock and leaves the connection as it was: the client goes on
// talking to its server outside the tree, which sees no reset.
func TestFailedTCPDumpUnlocks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		srvErr <- err
	}()
	bin := testproc.BuildC(t, "../../cmd/gockpt/testdata/tcpclient.c")
	dir := t.TempDir()
	p := testproc.Start(t, bin, dir, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	t.Cleanup(func() { p.Kill(); netlock.Unlock(strconv.Itoa(p.Pid)) })
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	count := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "count"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	want := errors.New("made to fail")
	_, err = Run(Options{Pid: p.Pid, ImagesDir: filepath.Join(t.TempDir(), "img"), TCPEstablished: true,
		AfterImages: func() error {
			if tables, _ := netlock.Tables(); len(tables) == 0 {
				t.Error("no network lock while the tree was dumped")
			}
			return want
		}})
	if !errors.Is(err, want) {
		t.Fatalf("dump: %v, want the failure made", err)
	}
	for _, tab := range mustTables(t) {
		if tab == netlock.TablePrefix+strconv.Itoa(p.Pid) {
			t.Fatalf("the failed dump left its lock %s", tab)
		}
	}
	from := count()
	for end := time.Now().Add(10 * time.Second); count() <= from+10; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "error")); err == nil {
			t.Fatalf("the client failed after the failed dump: %s", b)
		}
		select {
		case err := <-srvErr:
			t.Fatalf("the server's side ended after the failed dump: %v", err)
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("the client's counter stays at %d after the failed dump", count())
		}
	}
}

func mustTables(t *testing.T) []string {
	t.Helper()
	tabs, err := netlock.Tables()
	if err != nil {
		t.Fatal(err)
	}
	return tabs
}
