package pageserver

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// BenchmarkLink measures the page-server stream, with and without
// compression, over a real TCP connection:
//
//   - loopback: client and server on 127.0.0.1, nothing in between;
//   - 1gbit-1ms: two network namespaces made for the run (192.0.2.1 and
//     192.0.2.2, TEST-NET-1), joined by a 1 Gbit/s link with 1 ms of delay
//     each way: `tc netem rate 1gbit delay 1ms` on a veth pair where the
//     kernel has netem; where it has not (CONFIG_NET_SCH_NETEM off), a
//     TUN device in each namespace, tbf pacing each at 1 Gbit/s, and a
//     helper process (this test binary) that holds every packet 1 ms
//     before passing it to the other side (MTU 9000).
//
// The server (Receive writing images into /dev/shm, or ServeLazy serving
// from memory) runs in a process of its own (this test binary, in the
// server's namespace), the client in this one: each reports its CPU time.
// Each run moves 256 MiB of one kind of pages: mixed (a third zeros, a
// third text, a third random), python (the heap of python3 holding a big
// dict), random. "receive" is a dump sending pages (one target a 64 MiB,
// runs of 2 MiB); "lazy" is a lazy-pages daemon fetching them with GETs of
// 256 pages (its largest push), one after the other.
//
// It needs root (namespaces, TUN, tc) and python3; the namespaces are
// removed by the names it gave them, whatever the outcome.
//
//	go test -run XXX -bench Link -benchtime 1x ./internal/pageserver/
func BenchmarkLink(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces")
	}
	kinds := []struct {
		name string
		data func(testing.TB) []byte
	}{
		{"mixed", func(testing.TB) []byte { return heapPages(linkBytes/pagemap.PageSize, 7) }},
		{"python", pythonHeap},
		{"random", func(testing.TB) []byte { return heapRandom(linkBytes) }},
	}
	for _, link := range []string{"loopback", "1gbit-1ms"} {
		b.Run("link="+link, func(b *testing.B) {
			l := setupLink(b, link)
			for _, kind := range kinds {
				data := kind.data(b)
				file := filepath.Join("/dev/shm", fmt.Sprintf("gockpt-linkbench-%d-%s", os.Getpid(), kind.name))
				if err := os.WriteFile(file, data, 0o600); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.Remove(file) })
				for _, mode := range []string{"receive", "lazy"} {
					for _, compress := range []bool{false, true} {
						b.Run(fmt.Sprintf("data=%s/%s/compress=%v", kind.name, mode, compress), func(b *testing.B) {
							b.SetBytes(int64(len(data)))
							var r linkRun
							for range b.N {
								r = l.run(b, mode, file, data, compress)
							}
							b.ReportMetric(r.ratio, "ratio")
							b.ReportMetric(r.clientCPU.Seconds(), "client-cpu-s")
							b.ReportMetric(r.serverCPU.Seconds(), "server-cpu-s")
							b.ReportMetric(float64(len(data))/1e6/r.took.Seconds(), "MB/s")
							b.ReportMetric(float64(l.rtt.Microseconds())/1000, "rtt-ms")
						})
					}
				}
			}
		})
	}
}

// linkBytes is what each run moves.
const linkBytes = 256 << 20

func heapRandom(n int) []byte {
	out := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(out)
	return out
}

// pythonHeap is the memory of python3 holding a dict of 2 million
// entries: its private writable mappings, read through /proc/PID/mem,
// repeated to linkBytes if they are smaller.
func pythonHeap(tb testing.TB) []byte {
	py, err := exec.LookPath("python3")
	if err != nil {
		tb.Skip("no python3")
	}
	cmd := exec.Command(py, "-c", `import sys
d = {"key-%d" % i: [i, "value %d" % (i * 7), i / 3] for i in range(2000000)}
print("ready", flush=True)
sys.stdin.read()`)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() { in.Close(); cmd.Process.Kill(); cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		tb.Fatalf("python3: %q, %v", line, err)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer mem.Close()
	var heap []byte
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != "rw-p" || (len(f) > 5 && f[5] != "[heap]") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		buf := make([]byte, end-start)
		if n, _ := mem.ReadAt(buf, int64(start)); n > 0 {
			heap = append(heap, buf[:n]...)
		}
	}
	if len(heap) < pagemap.PageSize {
		tb.Fatal("python3's heap could not be read")
	}
	heap = heap[:len(heap)/pagemap.PageSize*pagemap.PageSize]
	out2 := make([]byte, 0, linkBytes)
	for len(out2) < linkBytes {
		out2 = append(out2, heap[:min(len(heap), linkBytes-len(out2))]...)
	}
	return out2
}

// link is where the server listens and how the client gets there.
type link struct {
	name   string
	srvNS  string // "" : this namespace
	cliNS  string
	listen string // the server's address
	rtt    time.Duration
}

type linkRun struct {
	took                 time.Duration
	ratio                float64
	clientCPU, serverCPU time.Duration
}

// setupLink makes the link; cleanups remove what it made.
func setupLink(b *testing.B, name string) *link {
	if name == "loopback" {
		l := &link{name: name, listen: "127.0.0.1:0"}
		l.rtt = l.measureRTT(b)
		return l
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("no %s", tool)
		}
	}
	id := os.Getpid()
	cli, srv := fmt.Sprintf("gockpt-bench-c%d", id), fmt.Sprintf("gockpt-bench-s%d", id)
	made := []string{}
	cleanup := func() {
		for _, ns := range made {
			exec.Command("ip", "netns", "del", ns).Run()
		}
		made = nil
	}
	b.Cleanup(cleanup)
	// An interrupted run removes them too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stop := make(chan struct{})
	go func() {
		select {
		case <-sig:
			cleanup()
			os.Exit(1)
		case <-stop:
		}
	}()
	b.Cleanup(func() { signal.Stop(sig); close(stop) })
	sh := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{cli, srv} {
		sh("ip", "netns", "add", ns)
		made = append(made, ns)
		sh("ip", "-n", ns, "link", "set", "lo", "up")
	}
	l := &link{name: name, cliNS: cli, srvNS: srv, listen: "192.0.2.2:0"}
	if exec.Command("ip", "-n", cli, "link", "add", "gkb0", "type", "veth", "peer", "name", "gkb1", "netns", srv).Run() == nil &&
		exec.Command("tc", "-n", cli, "qdisc", "add", "dev", "gkb0", "root", "netem", "rate", "1gbit", "delay", "1ms").Run() == nil {
		sh("tc", "-n", srv, "qdisc", "add", "dev", "gkb1", "root", "netem", "rate", "1gbit", "delay", "1ms")
		b.Log("link: veth pair with netem rate 1gbit delay 1ms on both ends")
	} else {
		exec.Command("ip", "-n", cli, "link", "del", "gkb0").Run()
		for _, d := range []struct{ ns, dev string }{{cli, "gkb0"}, {srv, "gkb1"}} {
			sh("ip", "-n", d.ns, "tuntap", "add", "dev", d.dev, "mode", "tun")
			sh("ip", "-n", d.ns, "link", "set", d.dev, "mtu", "9000")
			sh("tc", "-n", d.ns, "qdisc", "add", "dev", d.dev, "root", "tbf", "rate", "1gbit", "burst", "64kb", "latency", "100ms")
		}
		delay := helper(b, "", "delay", cli, "gkb0", srv, "gkb1", "1ms")
		if line := delay.line(b); line != "ready" {
			b.Fatalf("delay line: %s", line)
		}
		b.Log("link: no netem in this kernel: TUN devices with tbf rate 1gbit, a userspace delay line of 1 ms each way, MTU 9000")
	}
	sh("ip", "-n", cli, "addr", "add", "192.0.2.1/24", "dev", "gkb0")
	sh("ip", "-n", srv, "addr", "add", "192.0.2.2/24", "dev", "gkb1")
	sh("ip", "-n", cli, "link", "set", "gkb0", "up")
	sh("ip", "-n", srv, "link", "set", "gkb1", "up")
	l.rtt = l.measureRTT(b)
	return l
}

// measureRTT times TCP handshakes (one round trip each) to a server.
func (l *link) measureRTT(b *testing.B) time.Duration {
	h := helper(b, l.srvNS, "echo", l.listen)
	defer h.stop()
	addr := h.line(b)
	var best time.Duration
	for range 5 {
		begin := time.Now()
		c := l.dial(b, addr)
		took := time.Since(begin)
		c.Close()
		if best == 0 || took < best {
			best = took
		}
	}
	return best
}

// dial connects from the client's namespace.
func (l *link) dial(b *testing.B, addr string) net.Conn {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		if l.cliNS != "" {
			// This thread moves into the namespace and dies with the
			// goroutine (never unlocked).
			runtime.LockOSThread()
			f, err := os.Open("/run/netns/" + l.cliNS)
			if err != nil {
				ch <- res{err: err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- res{err: err}
				return
			}
		}
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		ch <- res{c, err}
	}()
	r := <-ch
	if r.err != nil {
		b.Fatal(r.err)
	}
	return r.c
}

// run moves data once and measures it.
func (l *link) run(b *testing.B, mode, file string, data []byte, compress bool) linkRun {
	b.StopTimer()
	h := helper(b, l.srvNS, mode, l.listen, file)
	addr := h.line(b)
	conn := l.dial(b, addr)
	c, err := newClient(conn, addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	b.StartTimer()
	begin := time.Now()
	if compress {
		dirs := CompressSent
		if mode == "lazy" {
			dirs = CompressAnswers
		}
		if err := c.Compress(dirs); err != nil {
			b.Fatal(err)
		}
	}
	if mode == "receive" {
		const perTarget = 64 << 20
		for t := 0; t*perTarget < len(data); t++ {
			s, _, err := c.Open(Task(1000 + t))
			if err != nil {
				b.Fatal(err)
			}
			part := data[t*perTarget : min(len(data), (t+1)*perTarget)]
			for off := 0; off < len(part); off += 2 << 20 {
				run := part[off:min(len(part), off+2<<20)]
				s.Add(pagemap.Entry{Vaddr: 0x10000000 + uint64(off), NrPages: uint64(len(run) / pagemap.PageSize), Flags: pagemap.FlagPresent})
				if _, err := s.Write(run); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		buf := make([]byte, 256*pagemap.PageSize)
		for off := 0; off < len(data); {
			n, err := c.Get(1, 0x10000000+uint64(off), uint64(min(len(buf), len(data)-off)/pagemap.PageSize), buf)
			if err != nil {
				b.Fatal(err)
			}
			got := buf[:n*pagemap.PageSize]
			if !bytes.Equal(got, data[off:off+len(got)]) {
				b.Fatalf("pages at %#x differ", off)
			}
			off += len(got)
		}
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	took := time.Since(begin)
	b.StopTimer()
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	res := h.line(b)
	var user, sys float64
	var wire uint64
	if _, err := fmt.Sscanf(res, "done %g %g %d", &user, &sys, &wire); err != nil {
		b.Fatalf("server: %s", res)
	}
	b.StartTimer()
	cpu := func(u unix.Rusage) time.Duration {
		return time.Duration(u.Utime.Nano() + u.Stime.Nano())
	}
	return linkRun{took: took, ratio: float64(len(data)) / float64(wire),
		clientCPU: cpu(after) - cpu(before), serverCPU: time.Duration((user + sys) * float64(time.Second))}
}

// helperProc is this test binary running TestLinkHelper.
type helperProc struct {
	cmd *exec.Cmd
	out *bufio.Reader
}

func helper(b *testing.B, ns string, args ...string) *helperProc {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{exe, "-test.run=^TestLinkHelper$"}
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "GOCKPT_LINK_HELPER="+strings.Join(args, " "))
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	h := &helperProc{cmd: cmd, out: bufio.NewReader(out)}
	b.Cleanup(h.stop)
	return h
}

func (h *helperProc) stop() {
	if h.cmd.ProcessState == nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	}
}

// line is the helper's next line of its own (the test runner's are
// skipped).
func (h *helperProc) line(b *testing.B) string {
	for {
		s, err := h.out.ReadString('\n')
		if err != nil {
			b.Fatalf("helper: %v (%q)", err, s)
		}
		if v, ok := strings.CutPrefix(s, "linkhelper: "); ok {
			return strings.TrimSpace(v)
		}
		if s != "PASS\n" {
			fmt.Fprint(os.Stderr, "helper: "+s)
		}
	}
}

// TestLinkHelper is BenchmarkLink's other processes: a server of one
// session (receive or lazy, from a file of pages), an echo server for
// measuring round trips, the delay line. Skipped unless
// $GOCKPT_LINK_HELPER says which.
func TestLinkHelper(t *testing.T) {
	args := strings.Fields(os.Getenv("GOCKPT_LINK_HELPER"))
	if len(args) == 0 {
		t.Skip("BenchmarkLink's helper")
	}
	say := func(format string, a ...any) { fmt.Printf("linkhelper: "+format+"\n", a...) }
	switch args[0] {
	case "delay":
		d, err := time.ParseDuration(args[5])
		if err != nil {
			t.Fatal(err)
		}
		a, err := openTun(args[1], args[2])
		if err != nil {
			t.Fatal(err)
		}
		c, err := openTun(args[3], args[4])
		if err != nil {
			t.Fatal(err)
		}
		go delayLine(a, c, d)
		go delayLine(c, a, d)
		say("ready")
		select {}
	case "echo":
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			t.Fatal(err)
		}
		say("%s", ln.Addr())
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	case "receive", "lazy":
		data, err := os.ReadFile(args[2])
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			t.Fatal(err)
		}
		say("%s", ln.Addr())
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		var before, after unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &before)
		var wire uint64
		if args[0] == "receive" {
			top, err := os.MkdirTemp("/dev/shm", "gockpt-linkbench-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(top)
			dir, err := images.CreateDir(filepath.Join(top, "img"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Receive(conn, dir, "bench")
			if err != nil {
				t.Fatal(err)
			}
			wire = got.Wire
			// Before "done": the benchmark may kill this process then.
			os.RemoveAll(top)
		} else {
			got, err := ServeLazy(conn, memSource(data), "bench")
			if err != nil {
				t.Fatal(err)
			}
			wire = got.Wire
		}
		unix.Getrusage(unix.RUSAGE_SELF, &after)
		conn.Close()
		secs := func(tv unix.Timeval) float64 { return float64(tv.Nano()) / 1e9 }
		say("done %g %g %d", secs(after.Utime)-secs(before.Utime), secs(after.Stime)-secs(before.Stime), wire)
	default:
		t.Fatalf("GOCKPT_LINK_HELPER=%q", args)
	}
}

// memSource serves data as task 1's lazy pages from 0x10000000 on.
type memSource []byte

func (m memSource) LazyRun(pid int, vaddr, most uint64) (uint64, error) {
	if pid != 1 || vaddr < 0x10000000 || vaddr-0x10000000 >= uint64(len(m)) {
		return 0, fmt.Errorf("no page at %#x", vaddr)
	}
	return min(most, (uint64(len(m))-(vaddr-0x10000000))/pagemap.PageSize), nil
}

func (m memSource) ReadLazy(pid int, vaddr uint64, p []byte) error {
	copy(p, m[vaddr-0x10000000:])
	return nil
}

// openTun attaches to TUN device dev of network namespace ns.
func openTun(ns, dev string) (*os.File, error) {
	type res struct {
		f   *os.File
		err error
	}
	ch := make(chan res, 1)
	go func() {
		// The thread dies with the goroutine, in the namespace.
		runtime.LockOSThread()
		nsf, err := os.Open("/run/netns/" + ns)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer nsf.Close()
		if err := unix.Setns(int(nsf.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- res{err: err}
			return
		}
		var req [unix.IFNAMSIZ + 64]byte
		copy(req[:], dev)
		binary.NativeEndian.PutUint16(req[unix.IFNAMSIZ:], unix.IFF_TUN|unix.IFF_NO_PI)
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
			unix.Close(fd)
			ch <- res{err: fmt.Errorf("TUNSETIFF %s: %w", dev, errno)}
			return
		}
		ch <- res{f: os.NewFile(uintptr(fd), dev)}
	}()
	r := <-ch
	return r.f, r.err
}

// delayLine passes the packets from in to out, each d after it came; a
// full queue (1000 packets, as netem's) drops.
func delayLine(in, out *os.File, d time.Duration) {
	type pkt struct {
		buf *[]byte
		n   int
		due time.Time
	}
	pool := sync.Pool{New: func() any { b := make([]byte, 65536); return &b }}
	q := make(chan pkt, 1000)
	go func() {
		for p := range q {
			if w := time.Until(p.due); w > 0 {
				time.Sleep(w)
			}
			out.Write((*p.buf)[:p.n])
			pool.Put(p.buf)
		}
	}()
	for {
		buf := pool.Get().(*[]byte)
		n, err := in.Read(*buf)
		if err != nil {
			if err == io.EOF {
				return
			}
			continue
		}
		select {
		case q <- pkt{buf, n, time.Now().Add(d)}:
		default:
			pool.Put(buf)
		}
	}
}
