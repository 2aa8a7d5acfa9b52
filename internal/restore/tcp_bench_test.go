package restore

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/netlock"
	"github.com/gockpt/gockpt/internal/testproc"
	pb "github.com/gockpt/gockpt/proto"
)

// acceptor accepts every connection to a listener on 127.0.0.1 and keeps
// it, outside the dumped trees.
type acceptor struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newAcceptor(b *testing.B) *acceptor {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	a := &acceptor{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.mu.Lock()
			a.conns = append(a.conns, c)
			a.mu.Unlock()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		a.mu.Lock()
		for _, c := range a.conns {
			c.Close()
		}
		a.mu.Unlock()
	})
	return a
}

func (a *acceptor) port() string { return strconv.Itoa(a.ln.Addr().(*net.TCPAddr).Port) }

// BenchmarkTCPFrozen is the frozen time a --tcp-established dump
// (--leave-running) adds for 100 and for 1,000 established connections,
// against the same program holding none, alternating the three round by
// round; medians after an untimed warm-up round. With $GOCKPT_TEST_CRIU,
// CRIU 4.2 dumps the same trees in the same rounds, both tools with
// --network-lock skip (CRIU's lock needs iptables, which this machine
// lacks), and the ratio of frozen times is reported too.
func BenchmarkTCPFrozen(b *testing.B) {
	criu := os.Getenv("GOCKPT_TEST_CRIU")
	bin := testproc.BuildC(b, "testdata/tcpconns.c")
	srv := newAcceptor(b)
	counts := []int{0, 100, 1000}
	pids := make([]int, len(counts))
	for i, n := range counts {
		dir := b.TempDir()
		p := testproc.Start(b, bin, dir, srv.port(), strconv.Itoa(n))
		b.Cleanup(func() { p.Kill(); netlock.Unlock(strconv.Itoa(p.Pid)) })
		testproc.WaitFile(b, filepath.Join(dir, "ready"), 60*time.Second)
		pids[i] = p.Pid
	}
	frozen := make([][]time.Duration, len(counts))
	var skipG, skipC []time.Duration // 1,000 connections, no lock
	for round := -1; round < b.N; round++ {
		for i, pid := range pids {
			imgs, err := os.MkdirTemp("/dev/shm", "gockpt-bench-")
			if err != nil {
				b.Skipf("no tmpfs at /dev/shm: %v", err)
			}
			st, err := dump.Run(dump.Options{Pid: pid, ImagesDir: imgs, LeaveRunning: true, TCPEstablished: true})
			os.RemoveAll(imgs)
			if err != nil {
				b.Fatal(err)
			}
			if round >= 0 {
				frozen[i] = append(frozen[i], st.FrozenTime)
			}
		}
		if criu == "" {
			continue
		}
		pid := pids[len(pids)-1]
		imgs, _ := os.MkdirTemp("/dev/shm", "gockpt-bench-")
		st, err := dump.Run(dump.Options{Pid: pid, ImagesDir: imgs, LeaveRunning: true, TCPEstablished: true, NetworkLock: dump.NetworkLockSkip})
		os.RemoveAll(imgs)
		if err != nil {
			b.Fatal(err)
		}
		c, err := criuFrozen(criu, pid)
		if err != nil {
			b.Fatal(err)
		}
		if round >= 0 {
			skipG, skipC = append(skipG, st.FrozenTime), append(skipC, c)
		}
	}
	if len(skipC) > 0 {
		g, c := median(skipG), median(skipC)
		b.ReportMetric(float64(g.Microseconds())/1000, "nolock-1000-gockpt-ms")
		b.ReportMetric(float64(c.Microseconds())/1000, "nolock-1000-criu-ms")
		b.ReportMetric(g.Seconds()/c.Seconds(), "nolock-1000-gockpt/criu")
	}
	base := median(frozen[0])
	b.ReportMetric(float64(base.Microseconds())/1000, "frozen-0-ms")
	for i := 1; i < len(counts); i++ {
		m := median(frozen[i])
		b.ReportMetric(float64(m.Microseconds())/1000, fmt.Sprintf("frozen-%d-ms", counts[i]))
		b.ReportMetric(float64((m-base).Microseconds())/1000, fmt.Sprintf("added-%d-ms", counts[i]))
		b.ReportMetric(m.Seconds()/base.Seconds(), fmt.Sprintf("frozen-%d/frozen-0", counts[i]))
	}
}

// BenchmarkTCPFirstEcho is the time from the start of restore until the
// first byte is echoed on a restored connection: a client whose peer is
// outside the tree is dumped (killed) with --tcp-established and
// restored; the moment restore starts, the peer sends a byte and waits
// for it to come back. The baseline is the restore alone of the same
// client (restore's own time, in the same round).
func BenchmarkTCPFirstEcho(b *testing.B) {
	bin := testproc.BuildC(b, "testdata/tcpconns.c")
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	srv := newAcceptor(b)
	var echoTimes, restoreTimes []time.Duration
	for round := -1; round < b.N; round++ {
		dir := b.TempDir()
		srv.mu.Lock()
		had := len(srv.conns)
		srv.mu.Unlock()
		p := testproc.Start(b, bin, dir, srv.port(), "1", "echo")
		testproc.WaitFile(b, filepath.Join(dir, "ready"), 60*time.Second)
		var peer net.Conn
		for peer == nil {
			srv.mu.Lock()
			if len(srv.conns) > had {
				peer = srv.conns[had]
			}
			srv.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
		imgs, err := os.MkdirTemp("/dev/shm", "gockpt-bench-")
		if err != nil {
			b.Skipf("no tmpfs at /dev/shm: %v", err)
		}
		if _, err := dump.Run(dump.Options{Pid: p.Pid, ImagesDir: imgs, TCPEstablished: true}); err != nil {
			b.Fatal(err)
		}
		p.Cmd.Wait()
		reapAll([]int{p.Pid})
		echoed := make(chan time.Time, 1)
		start := time.Now()
		go func() {
			// The peer's byte goes out at once: the lock holds it back
			// (and TCP sends it again) until the restored client runs.
			peer.Write([]byte{'x'})
			buf := make([]byte, 1)
			peer.SetReadDeadline(time.Now().Add(30 * time.Second))
			if n, _ := peer.Read(buf); n == 1 {
				echoed <- time.Now()
			}
			close(echoed)
		}()
		res, err := Run(Options{ImagesDir: imgs, TCPEstablished: true})
		if err != nil {
			b.Fatal(err)
		}
		restoreTime := time.Since(start)
		at, ok := <-echoed
		if !ok {
			b.Fatal("the restored connection never echoed")
		}
		unix.Kill(res.RootPid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(res.RootPid, &ws, 0, nil)
		os.RemoveAll(imgs)
		if round >= 0 {
			echoTimes, restoreTimes = append(echoTimes, at.Sub(start)), append(restoreTimes, restoreTime)
		}
	}
	e, r := median(echoTimes), median(restoreTimes)
	b.ReportMetric(float64(e.Microseconds())/1000, "first-echo-ms")
	b.ReportMetric(float64(r.Microseconds())/1000, "restore-ms")
	b.ReportMetric(e.Seconds()/r.Seconds(), "first-echo/restore")
}

// criuFrozen dumps pid with CRIU (--leave-running --tcp-established
// --network-lock skip) and returns the frozen time its stats-dump says.
func criuFrozen(criu string, pid int) (time.Duration, error) {
	imgs, err := os.MkdirTemp("/dev/shm", "criu-bench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(imgs)
	cmd := exec.Command(criu, "dump", "-t", strconv.Itoa(pid), "-D", imgs, "-R", "--tcp-established", "--network-lock", "skip", "-o", "dump.log")
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(imgs, "dump.log"))
		return 0, fmt.Errorf("criu dump: %v: %s\n%s", err, out, log)
	}
	d, err := images.OpenDir(imgs)
	if err != nil {
		return 0, err
	}
	var st pb.StatsEntry
	if err := d.ReadOne(images.StatsDumpFile, &st); err != nil {
		return 0, err
	}
	return time.Duration(st.GetDump().GetFrozenTime()) * time.Microsecond, nil
}
