package netlock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// blockedFor is how long data must fail to arrive for a direction to count
// as locked; arriveWithin bounds the wait for data after Unlock, which comes
// with TCP's retransmission backoff (200 ms, 400 ms, ... on loopback).
const (
	blockedFor   = 300 * time.Millisecond
	arriveWithin = 15 * time.Second
)

// The main goroutine keeps the main thread, so the tests that change a
// thread for good (its capabilities, its network namespace) and let it end
// with their goroutine never get the main thread: Go keeps that one alive,
// and /proc/self would show what they did to it.
func init() { runtime.LockOSThread() }

// requireNftables skips without CAP_NET_ADMIN and fails where nftables
// should work but Probe says it does not.
func requireNftables(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if caps&(1<<unix.CAP_NET_ADMIN) == 0 {
				t.Skip("no CAP_NET_ADMIN: nftables cannot be changed")
			}
		}
	}
	if err := Probe(); err != nil {
		t.Fatalf("nftables does not work with CAP_NET_ADMIN: %v", err)
	}
}

var ids atomic.Int64

// newID returns a lock id no other test uses and removes its table when the
// test ends, whatever the outcome.
func newID(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, t.Name())
	id := fmt.Sprintf("test-%d-%d-%s", os.Getpid(), ids.Add(1), name)
	t.Cleanup(func() {
		if err := Unlock(id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if hasTable(t, TablePrefix+id) {
			t.Errorf("cleanup: table %s%s still there after Unlock", TablePrefix, id)
		}
	})
	return id
}

func hasTable(t testing.TB, name string) bool {
	t.Helper()
	ts, err := Tables()
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(ts, name)
}

func mustLock(t testing.TB, id string, conns ...Conn) {
	t.Helper()
	if err := Lock(id, conns); err != nil {
		t.Fatal(err)
	}
}

func mustUnlock(t testing.TB, id string) {
	t.Helper()
	if err := Unlock(id); err != nil {
		t.Fatal(err)
	}
}

func table(id string) *nftables.Table {
	return &nftables.Table{Name: TablePrefix + id, Family: nftables.TableFamilyINet}
}

// dropped sums the lock's rule counters: how many packets it dropped.
func dropped(t testing.TB, id string) uint64 {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, chain := range []string{inputChain, outputChain} {
		rules, err := c.GetRules(table(id), &nftables.Chain{Name: chain, Table: table(id)})
		if err != nil {
			t.Fatalf("rules of chain %s: %v", chain, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					n += c.Packets
				}
			}
		}
	}
	return n
}

// locked lists the connections in the lock's sets, as
// "local -> remote" strings, sorted.
func locked(t testing.TB, id string) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range []family{ipv4, ipv6} {
		s, err := c.GetSetByName(table(id), f.set)
		if err != nil {
			t.Fatalf("set %s: %v", f.set, err)
		}
		elems, err := c.GetSetElements(s)
		if err != nil {
			t.Fatalf("elements of set %s: %v", f.set, err)
		}
		n := int(f.addrLen)
		for _, e := range elems {
			if len(e.Key) != 2*n+8 {
				t.Fatalf("set %s: key of %d bytes: %x", f.set, len(e.Key), e.Key)
			}
			l, _ := netip.AddrFromSlice(e.Key[:n])
			r, _ := netip.AddrFromSlice(e.Key[n+4 : 2*n+4])
			lp := uint16(e.Key[n])<<8 | uint16(e.Key[n+1])
			rp := uint16(e.Key[2*n+4])<<8 | uint16(e.Key[2*n+5])
			out = append(out, Conn{netip.AddrPortFrom(l, lp), netip.AddrPortFrom(r, rp)}.String())
		}
	}
	slices.Sort(out)
	return out
}

func strs(conns ...Conn) []string {
	var out []string
	for _, c := range conns {
		out = append(out, Conn{
			netip.AddrPortFrom(c.Local.Addr().Unmap(), c.Local.Port()),
			netip.AddrPortFrom(c.Remote.Addr().Unmap(), c.Remote.Port()),
		}.String())
	}
	slices.Sort(out)
	return out
}

func TestLockTablesUnlock(t *testing.T) {
	requireNftables(t)
	id := newID(t)
	name := TablePrefix + id
	if hasTable(t, name) {
		t.Fatalf("table %s exists before Lock", name)
	}
	c := Conn{netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2")}
	mustLock(t, id, c)
	if !hasTable(t, name) {
		t.Fatalf("Tables() lacks %s after Lock", name)
	}
	if got, want := locked(t, id), strs(c); !slices.Equal(got, want) {
		t.Errorf("locked %v, want %v", got, want)
	}
	ts, _ := Tables()
	for _, n := range ts {
		if !strings.HasPrefix(n, TablePrefix) {
			t.Errorf("Tables() lists %q, not a gockpt table", n)
		}
	}
	mustUnlock(t, id)
	if hasTable(t, name) {
		t.Fatalf("table %s still there after Unlock", name)
	}
	if err := Unlock(id); err != nil {
		t.Fatalf("Unlock of a table already gone: %v", err)
	}
}

// TestLockAddresses: IPv4, IPv6 and IPv4-mapped IPv6 connections land in
// the set of the family their packets have; duplicates count once.
func TestLockAddresses(t *testing.T) {
	requireNftables(t)
	id := newID(t)
	conns := []Conn{
		{netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:80")},
		{netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::2]:443")},
		{netip.MustParseAddrPort("[::ffff:192.0.2.1]:40001"), netip.MustParseAddrPort("[::ffff:192.0.2.3]:22")},
		{netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:80")},
	}
	mustLock(t, id, conns...)
	want := []string{
		"192.0.2.1:40000 -> 192.0.2.2:80",
		"192.0.2.1:40001 -> 192.0.2.3:22",
		"[2001:db8::1]:40000 -> [2001:db8::2]:443",
	}
	if got := locked(t, id); !slices.Equal(got, want) {
		t.Errorf("locked:\n%v\nwant:\n%v", got, want)
	}
}

func TestLockErrors(t *testing.T) {
	for _, c := range []struct {
		id    string
		conns []Conn
		want  string
	}{
		{"", nil, "network lock: empty lock id"},
		{"a\x00b", nil, `network lock: lock id "a\x00b" holds a NUL byte`},
		{strings.Repeat("x", 250), nil, "network lock: table name gockpt-xxxxxxxxxxxxxxxxxxxxxxxxx... is 257 bytes long, nftables takes at most 255"},
		{"x", []Conn{{netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("[::1]:2")}},
			"network lock: TCP connection 127.0.0.1:1 -> [::1]:2: local and remote addresses are of different families"},
		{"x", []Conn{{Local: netip.MustParseAddrPort("127.0.0.1:1")}},
			"network lock: TCP connection 127.0.0.1:1 -> invalid AddrPort: missing address"},
	} {
		err := Lock(c.id, c.conns)
		if err == nil || err.Error() != c.want {
			t.Errorf("Lock(%q, %v) = %v, want %q", c.id, c.conns, err, c.want)
		}
	}
	if err := Unlock(""); err == nil || err.Error() != "network lock: empty lock id" {
		t.Errorf("Unlock(\"\") = %v", err)
	}
}

// TestLockWithoutCapNetAdmin: on a thread without CAP_NET_ADMIN (a thread's
// capabilities are its own), every call fails and says what is missing.
func TestLockWithoutCapNetAdmin(t *testing.T) {
	requireNftables(t)
	id := newID(t)
	name := TablePrefix + id
	done := make(chan []error, 1)
	go func() {
		// Never unlocked: the thread, with its capabilities, ends
		// with the goroutine.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- []error{err}
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- []error{err}
			return
		}
		_, tablesErr := Tables()
		done <- []error{
			Lock(id, []Conn{rawConn("127.9.5.1:1", "127.9.5.2:2")}),
			Unlock(id),
			Probe(),
			tablesErr,
		}
	}()
	errs := <-done
	if len(errs) == 1 {
		t.Fatalf("dropping CAP_NET_ADMIN: %v", errs[0])
	}
	probe := "nftables: create table inet gockpt-probe-" + strconv.Itoa(os.Getpid()) + "-"
	for i, want := range []string{
		"network lock: create nftables table inet " + name + " for 1 TCP connection: operation not permitted (CAP_NET_ADMIN needed)",
		"network lock: nftables table inet " + name + ": delete: operation not permitted (CAP_NET_ADMIN needed)",
		probe + "XXXXXXXX: operation not permitted (CAP_NET_ADMIN needed)",
		"nftables: list tables: operation not permitted (CAP_NET_ADMIN needed)",
	} {
		got := fmt.Sprint(errs[i])
		if s, ok := strings.CutPrefix(got, probe); ok && len(s) >= 8 {
			got = probe + "XXXXXXXX" + s[8:] // the random suffix
		}
		if got != want {
			t.Errorf("without CAP_NET_ADMIN:\n got %s\nwant %s", got, want)
		}
		if !errors.Is(errs[i], unix.EPERM) {
			t.Errorf("%v: not EPERM for errors.Is", errs[i])
		}
	}
}

// tcpPair connects a client to a server over ln and closes all three when
// the test ends.
func tcpPair(t *testing.T, ln net.Listener, dial func() (net.Conn, error)) (client, server *net.TCPConn) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	return ln
}

func dialTo(network string, ln net.Listener) func() (net.Conn, error) {
	return func() (net.Conn, error) { return net.Dial(network, ln.Addr().String()) }
}

// connOf is the connection as c's socket sees it.
func connOf(c net.Conn) Conn {
	return Conn{c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()}
}

// send writes msg on from; the write only queues it.
func send(t *testing.T, from net.Conn, msg string) {
	t.Helper()
	if _, err := from.Write([]byte(msg)); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

// assertBlocked checks that nothing arrives on to for blockedFor, and that
// the wait ends by the deadline, not by a reset.
func assertBlocked(t *testing.T, to net.Conn, what string) {
	t.Helper()
	to.SetReadDeadline(time.Now().Add(blockedFor))
	buf := make([]byte, 64)
	n, err := to.Read(buf)
	switch {
	case n > 0:
		t.Errorf("%s: %q arrived through the lock", what, buf[:n])
	case !errors.Is(err, os.ErrDeadlineExceeded):
		t.Errorf("%s: read ended with %v, want a timeout (the connection must stay usable)", what, err)
	}
}

// assertArrives reads exactly msg from to within arriveWithin.
func assertArrives(t *testing.T, to net.Conn, msg, what string) {
	t.Helper()
	start := time.Now()
	to.SetReadDeadline(start.Add(arriveWithin))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(to, buf); err != nil {
		t.Fatalf("%s: %q did not arrive: %v", what, msg, err)
	}
	if string(buf) != msg {
		t.Fatalf("%s: got %q, want %q", what, buf, msg)
	}
	t.Logf("%s: arrived after %v", what, time.Since(start).Round(time.Millisecond))
}

// exerciseLock locks the connection as lockSide's socket sees it, checks
// that neither direction gets through and that the lock counted drops, then
// unlocks and checks that what was sent arrives and the connection works.
func exerciseLock(t *testing.T, client, server *net.TCPConn, lockSide net.Conn) {
	t.Helper()
	send(t, client, "hello")
	assertArrives(t, server, "hello", "before the lock")
	id := newID(t)
	mustLock(t, id, connOf(lockSide))
	send(t, client, "ping")
	assertBlocked(t, server, "client to server")
	send(t, server, "pong")
	assertBlocked(t, client, "server to client")
	if n := dropped(t, id); n == 0 {
		t.Error("the lock counted no dropped packet")
	}
	mustUnlock(t, id)
	assertArrives(t, server, "ping", "client to server after Unlock")
	assertArrives(t, client, "pong", "server to client after Unlock")
	send(t, server, "again")
	assertArrives(t, client, "again", "server to client, new data")
	send(t, client, "again")
	assertArrives(t, server, "again", "client to server, new data")
}

func TestLockTCP(t *testing.T) {
	requireNftables(t)
	t.Run("ipv4", func(t *testing.T) {
		ln := listen(t, "tcp4", "127.0.0.1:0")
		client, server := tcpPair(t, ln, dialTo("tcp4", ln))
		exerciseLock(t, client, server, client)
	})
	t.Run("ipv4-server-side", func(t *testing.T) {
		ln := listen(t, "tcp4", "127.0.0.1:0")
		client, server := tcpPair(t, ln, dialTo("tcp4", ln))
		exerciseLock(t, client, server, server)
	})
	t.Run("ipv6", func(t *testing.T) {
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		client, server := tcpPair(t, ln, dialTo("tcp6", ln))
		exerciseLock(t, client, server, client)
	})
	t.Run("ipv4-mapped", func(t *testing.T) {
		// A dual-stack server socket bound to ::ffff:127.0.0.1, an IPv4
		// client: the server sees IPv4-mapped addresses, the packets are
		// IPv4.
		ln := dualStackListener(t)
		client, server := tcpPair(t, ln, dialTo("tcp4", ln))
		c := connOf(server)
		if !c.Local.Addr().Is4In6() || !c.Remote.Addr().Is4In6() {
			t.Fatalf("server side %v: want IPv4-mapped IPv6 addresses", c)
		}
		exerciseLock(t, client, server, server)
	})
}

// dualStackListener listens on an AF_INET6 socket with IPV6_V6ONLY off,
// bound to ::ffff:127.0.0.1, so only loopback reaches it.
func dualStackListener(t *testing.T) net.Listener {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "dual-stack listener")
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet6{Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind [::ffff:127.0.0.1]:0: %v", err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestLockSparesOtherConnections: a second connection between the same
// addresses, not in the lock, keeps working while the first is locked.
func TestLockSparesOtherConnections(t *testing.T) {
	requireNftables(t)
	ln := listen(t, "tcp4", "127.0.0.1:0")
	client, server := tcpPair(t, ln, dialTo("tcp4", ln))
	client2, server2 := tcpPair(t, ln, dialTo("tcp4", ln))
	id := newID(t)
	mustLock(t, id, connOf(client))
	send(t, client, "ping")
	send(t, client2, "ping2")
	assertArrives(t, server2, "ping2", "unlocked connection, client to server")
	send(t, server2, "pong2")
	assertArrives(t, client2, "pong2", "unlocked connection, server to client")
	assertBlocked(t, server, "locked connection, client to server")
	mustUnlock(t, id)
	assertArrives(t, server, "ping", "client to server after Unlock")
}

// TestLockLetsMarkedPacketsThrough: what a socket with SO_MARK = Mark sends
// passes the lock of its own connection, even with both ends locked (on
// loopback the mark stays on the packet from output to input); what its
// peer sends, unmarked, does not.
func TestLockLetsMarkedPacketsThrough(t *testing.T) {
	requireNftables(t)
	ln := listen(t, "tcp4", "127.0.0.1:0")
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, Mark) }); err != nil {
			return err
		}
		return serr
	}}
	client, server := tcpPair(t, ln, func() (net.Conn, error) { return d.Dial("tcp4", ln.Addr().String()) })
	id := newID(t)
	mustLock(t, id, connOf(client), connOf(server))
	send(t, client, "marked")
	assertArrives(t, server, "marked", "marked client to server through the lock")
	send(t, server, "unmarked")
	assertBlocked(t, client, "unmarked server to client")
	mustUnlock(t, id)
	assertArrives(t, client, "unmarked", "server to client after Unlock")
}

// rawTCP sends bare TCP segments (RST, bad checksum: nothing answers them)
// from local to remote through a raw socket. A segment the output hook
// drops fails with EPERM, so sendto tells at once whether the lock let it
// through.
type rawTCP struct {
	fd     int
	remote unix.Sockaddr
	seg    []byte
}

func newRawTCP(t testing.TB, c Conn, mark bool) *rawTCP {
	t.Helper()
	var af int
	var local, remote unix.Sockaddr
	if c.Local.Addr().Is4() {
		af, local, remote = unix.AF_INET, &unix.SockaddrInet4{Addr: c.Local.Addr().As4()}, &unix.SockaddrInet4{Addr: c.Remote.Addr().As4()}
	} else {
		af, local, remote = unix.AF_INET6, &unix.SockaddrInet6{Addr: c.Local.Addr().As16()}, &unix.SockaddrInet6{Addr: c.Remote.Addr().As16()}
	}
	fd, err := unix.Socket(af, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		t.Fatalf("raw TCP socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, local); err != nil {
		t.Fatalf("bind raw socket to %v: %v", c.Local.Addr(), err)
	}
	if mark {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, Mark); err != nil {
			t.Fatal(err)
		}
	}
	seg := make([]byte, 20)
	seg[0], seg[1] = byte(c.Local.Port()>>8), byte(c.Local.Port())
	seg[2], seg[3] = byte(c.Remote.Port()>>8), byte(c.Remote.Port())
	seg[12] = 5 << 4 // data offset
	seg[13] = 0x04   // RST
	return &rawTCP{fd: fd, remote: remote, seg: seg}
}

// send reports whether the segment passed the output hook.
func (r *rawTCP) send(t testing.TB) bool {
	err := unix.Sendto(r.fd, r.seg, 0, r.remote)
	if errors.Is(err, unix.EPERM) {
		return false
	}
	if err != nil {
		t.Errorf("sendto: %v", err)
	}
	return err == nil
}

// rawConn is a made-up connection on loopback addresses nothing else uses.
func rawConn(local, remote string) Conn {
	return Conn{netip.MustParseAddrPort(local), netip.MustParseAddrPort(remote)}
}

// TestLockOutputDirection: on output the lock drops local-to-remote
// segments only, for IPv4 and IPv6, and lets marked ones through.
func TestLockOutputDirection(t *testing.T) {
	requireNftables(t)
	for _, c := range []Conn{
		rawConn("127.9.0.1:40001", "127.9.0.2:40002"),
		rawConn("[::1]:40003", "[::1]:40004"),
	} {
		out := newRawTCP(t, c, false)
		back := newRawTCP(t, Conn{c.Remote, c.Local}, false)
		marked := newRawTCP(t, c, true)
		if !out.send(t) || !back.send(t) {
			t.Fatalf("%v: segments fail before any lock", c)
		}
		id := newID(t)
		mustLock(t, id, c)
		if out.send(t) {
			t.Errorf("%v: local-to-remote segment passed the lock", c)
		}
		if !back.send(t) {
			t.Errorf("%v: remote-to-local segment dropped on output", c)
		}
		if !marked.send(t) {
			t.Errorf("%v: marked segment dropped", c)
		}
		mustUnlock(t, id)
		if !out.send(t) {
			t.Errorf("%v: segment dropped after Unlock", c)
		}
	}
}

// TestLockReplaces: Lock on an existing table replaces its connections.
func TestLockReplaces(t *testing.T) {
	requireNftables(t)
	a := rawConn("127.9.1.1:40001", "127.9.1.2:40002")
	b := rawConn("127.9.1.1:40003", "127.9.1.2:40004")
	c := rawConn("[::1]:40005", "[::1]:40006")
	sa, sb, sc := newRawTCP(t, a, false), newRawTCP(t, b, false), newRawTCP(t, c, false)
	id := newID(t)
	mustLock(t, id, a, b)
	if sa.send(t) || sb.send(t) || !sc.send(t) {
		t.Fatal("lock of a and b: wrong segments dropped")
	}
	mustLock(t, id, b, c)
	if got, want := locked(t, id), strs(b, c); !slices.Equal(got, want) {
		t.Errorf("after the second Lock: locked %v, want %v", got, want)
	}
	if !sa.send(t) {
		t.Error("a, no longer in the lock, still dropped")
	}
	if sb.send(t) || sc.send(t) {
		t.Error("b or c, in the new lock, got through")
	}
	ts, err := Tables()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(ts, "\n")+"\n", TablePrefix+id+"\n"); n != 1 {
		t.Errorf("%d tables named %s%s, want 1", n, TablePrefix, id)
	}
}

// TestLockReplaceKeepsLock: a connection in both the old and the new set is
// never let through while the lock is replaced, again and again, under a
// steady stream of its segments.
func TestLockReplaceKeepsLock(t *testing.T) {
	requireNftables(t)
	a := rawConn("127.9.2.1:40001", "127.9.2.2:40002")
	b := rawConn("127.9.2.1:40003", "127.9.2.2:40004")
	c := rawConn("127.9.2.1:40005", "127.9.2.2:40006")
	sb := newRawTCP(t, b, false)
	id := newID(t)
	mustLock(t, id, a, b)
	var passed, held atomic.Int64
	var sent int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent++
			if sb.send(t) {
				passed.Add(1)
			} else {
				held.Add(1)
			}
		}
	})
	start := time.Now()
	const rounds = 100
	for i := range rounds {
		next := []Conn{b, c}
		if i%2 == 1 {
			next = []Conn{a, b}
		}
		if err := Lock(id, next); err != nil {
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d replacements in %v, %d segments sent meanwhile", rounds, time.Since(start).Round(time.Millisecond), sent)
	if n := passed.Load(); n > 0 {
		t.Errorf("%d of %d segments got through while the lock was replaced", n, sent)
	}
	if held.Load() < rounds {
		t.Errorf("only %d segments sent during %d replacements: the test proves nothing", held.Load(), rounds)
	}
}

// TestLockMany: 10,000 connections take several netlink messages and a
// batch larger than the default socket buffer.
func TestLockMany(t *testing.T) {
	requireNftables(t)
	conns := manyConns(10000)
	id := newID(t)
	start := time.Now()
	mustLock(t, id, conns...)
	t.Logf("Lock of %d connections: %v", len(conns), time.Since(start))
	if got, want := locked(t, id), strs(conns...); !slices.Equal(got, want) {
		t.Errorf("%d connections locked, want %d", len(got), len(want))
	}
}

// manyConns makes n distinct connections, half IPv4, half IPv6, in
// documentation ranges.
func manyConns(n int) []Conn {
	out := make([]Conn, n)
	for i := range out {
		port := uint16(10000 + i)
		if i%2 == 0 {
			out[i] = Conn{netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port), netip.MustParseAddrPort("192.0.2.2:443")}
		} else {
			out[i] = Conn{netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), port), netip.MustParseAddrPort("[2001:db8::2]:443")}
		}
	}
	return out
}

// TestLockCurrentNetns: the lock goes to the network namespace of the
// calling thread. The test makes a namespace on a thread of its own, which
// ends with the thread.
func TestLockCurrentNetns(t *testing.T) {
	requireNftables(t)
	id := newID(t)
	name := TablePrefix + id
	c := rawConn("127.9.4.1:1", "127.9.4.2:2")
	type result struct {
		tables []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, the only user of the new
		// namespace, exits with the goroutine and takes it along.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("unshare CLONE_NEWNET: %w", err)}
			return
		}
		if err := Lock(id, []Conn{c}); err != nil {
			done <- result{err: err}
			return
		}
		ts, err := Tables()
		if err == nil {
			err = Unlock(id)
		}
		done <- result{ts, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !slices.Contains(r.tables, name) {
		t.Errorf("Tables() in the new namespace: %v, want %s among them", r.tables, name)
	}
	if hasTable(t, name) {
		t.Errorf("table %s made in another namespace shows in ours", name)
	}
}

func TestProbe(t *testing.T) {
	requireNftables(t) // calls Probe
	for range 3 {
		if err := Probe(); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := Tables()
	if err != nil {
		t.Fatal(err)
	}
	mine := fmt.Sprintf("%sprobe-%d-", TablePrefix, os.Getpid())
	for _, n := range ts {
		if strings.HasPrefix(n, mine) {
			t.Errorf("Probe left table %s behind", n)
		}
	}
}

// TestNoSocketLeft: every call closes the netlink socket it opened.
func TestNoSocketLeft(t *testing.T) {
	requireNftables(t)
	id := newID(t)
	c := rawConn("127.9.3.1:1", "127.9.3.2:2")
	before := openFds(t)
	for range 5 {
		mustLock(t, id, c)
		if _, err := Tables(); err != nil {
			t.Fatal(err)
		}
		mustUnlock(t, id)
		mustUnlock(t, id)
		if err := Probe(); err != nil {
			t.Fatal(err)
		}
	}
	if after := openFds(t); !bytes.Equal([]byte(after), []byte(before)) {
		t.Errorf("open fds before: %s\nafter: %s", before, after)
	}
}

// openFds lists our open fds and what they are.
func openFds(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "%s=%s ", e.Name(), l)
	}
	return b.String()
}

func benchmarkLock(b *testing.B, n int) {
	requireNftables(b)
	conns := manyConns(n)
	id := newID(b)
	var lock, unlock time.Duration
	for b.Loop() {
		start := time.Now()
		if err := Lock(id, conns); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := Unlock(id); err != nil {
			b.Fatal(err)
		}
		lock += mid.Sub(start)
		unlock += time.Since(mid)
	}
	b.ReportMetric(float64(lock.Microseconds())/float64(b.N), "lock-µs/op")
	b.ReportMetric(float64(unlock.Microseconds())/float64(b.N), "unlock-µs/op")
}

// BenchmarkLock100 and BenchmarkLock1000: Lock then Unlock of 100 and 1,000
// connections (half IPv4, half IPv6); each half is reported too.
func BenchmarkLock100(b *testing.B)  { benchmarkLock(b, 100) }
func BenchmarkLock1000(b *testing.B) { benchmarkLock(b, 1000) }
