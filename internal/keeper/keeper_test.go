package keeper

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/proc"
)

// helperCmd makes the test binary a keeper: argv is
// [exe helperCmd [-startup-timeout D] --addr ADDR], fd 3 the ready pipe.
const helperCmd = "keeper-test-serve"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == helperCmd {
		os.Exit(serveHelper(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func serveHelper(args []string) int {
	var addr string
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "-startup-timeout":
			d, err := time.ParseDuration(args[i+1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			startupTimeout = d
		case "--addr":
			addr = args[i+1]
		}
	}
	if err := Serve(addr, os.NewFile(3, "ready")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testKeeper is a keeper this test started, watched through a pidfd so that
// killing it can never hit a reused PID.
type testKeeper struct {
	addr  string
	pid   int
	pidfd int
	log   string
}

func startKeeper(t *testing.T, extra ...string) *testKeeper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "keeper.log")
	addr, pid, err := Start(append([]string{exe, helperCmd}, extra...), logPath)
	if err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		unix.Kill(pid, unix.SIGKILL) // it cannot have been reaped yet: it just said it was ready
		t.Fatalf("pidfd_open(keeper %d): %v", pid, err)
	}
	k := &testKeeper{addr: addr, pid: pid, pidfd: pidfd, log: logPath}
	t.Cleanup(func() {
		unix.PidfdSendSignal(k.pidfd, unix.SIGKILL, nil, 0)
		if !k.exited(5 * time.Second) {
			t.Errorf("keeper %d did not die on SIGKILL", k.pid)
		}
		unix.Close(k.pidfd)
		if t.Failed() {
			b, _ := os.ReadFile(k.log)
			t.Logf("keeper log:\n%s", b)
		}
	})
	return k
}

// exited waits up to d for the keeper to exit.
func (k *testKeeper) exited(d time.Duration) bool {
	p := []unix.PollFd{{Fd: int32(k.pidfd), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		n, err := unix.Poll(p, int(time.Until(deadline)/time.Millisecond)+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

func (k *testKeeper) mustExit(t *testing.T, why string) {
	t.Helper()
	if !k.exited(5 * time.Second) {
		t.Fatalf("keeper %d still runs 5s after %s", k.pid, why)
	}
}

func (k *testKeeper) mustRun(t *testing.T) {
	t.Helper()
	if k.exited(0) {
		t.Fatalf("keeper %d exited", k.pid)
	}
}

func (k *testKeeper) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(k.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func dial(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testFD closes once, so that a cleanup never closes a reused fd number.
type testFD struct{ fd int }

func (f *testFD) Close() {
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
	}
}

const uffdUserModeOnly = 1

func newUffd(t *testing.T) *testFD {
	t.Helper()
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|uffdUserModeOnly, 0, 0)
	if errno == unix.ENOSYS {
		t.Skip("no userfaultfd in this kernel (CONFIG_USERFAULTFD)")
	}
	if errno != 0 {
		t.Fatalf("userfaultfd: %v", errno)
	}
	f := &testFD{fd: int(fd)}
	t.Cleanup(f.Close)
	return f
}

// inode identifies a uffd: each has its own anonymous inode.
func inode(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat fd %d: %v", fd, err)
	}
	return st.Ino
}

// checkUffd checks that fd is a userfaultfd opened O_CLOEXEC.
func checkUffd(t *testing.T, fd int) {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	if link != "anon_inode:[userfaultfd]" {
		t.Errorf("fd %d is %q, want anon_inode:[userfaultfd]", fd, link)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("fd %d is not close-on-exec", fd)
	}
}

type sleeper struct {
	cmd   *exec.Cmd
	pid   int
	start uint64
}

func startSleeper(t *testing.T) *sleeper {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill() // by pidfd: safe after Wait, too
		cmd.Wait()
	})
	st, err := proc.ReadStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return &sleeper{cmd: cmd, pid: cmd.Process.Pid, start: st.StartTime}
}

// kill kills the sleeper and waits until it is gone.
func (s *sleeper) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()
}

func (s *sleeper) entry(fd int) Entry { return Entry{Pid: s.pid, StartTime: s.start, Fd: fd} }

func commit(t *testing.T, addr string, st *State) {
	t.Helper()
	c := dial(t, addr)
	if err := c.Commit(st); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func take(t *testing.T, addr string) *State {
	t.Helper()
	c := dial(t, addr)
	st, err := c.Take()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	t.Cleanup(st.Close)
	return st
}

func TestCommitTake(t *testing.T) {
	k := startKeeper(t)
	s := startSleeper(t)
	uffd := newUffd(t)
	ino := inode(t, uffd.fd)

	commit(t, k.addr, &State{Generation: "g1", Entries: []Entry{s.entry(uffd.fd)}})
	uffd.Close() // from now on only the keeper holds it

	st := take(t, k.addr)
	if st.Generation != "g1" || len(st.Entries) != 1 {
		t.Fatalf("take = %+v, want generation g1 with 1 entry", st)
	}
	e := st.Entries[0]
	if e.Pid != s.pid || e.StartTime != s.start {
		t.Errorf("entry = %+v, want pid %d start %d", e, s.pid, s.start)
	}
	checkUffd(t, e.Fd)
	if got := inode(t, e.Fd); got != ino {
		t.Errorf("took the uffd of inode %d, committed inode %d", got, ino)
	}

	// A Take not followed by a Commit leaves no generation to trust.
	st2 := take(t, k.addr)
	if st2.Generation != "" || len(st2.Entries) != 1 {
		t.Fatalf("second take = %+v, want no generation and 1 entry", st2)
	}
	k.mustRun(t)

	s.kill(t)
	k.mustExit(t, "its only task exited")
	log := k.logText(t)
	for _, want := range []string{
		`committed generation "g1": holding 1 tasks (0 dropped)`,
		`took generation "g1" (1 tasks); generation now unset`,
		fmt.Sprintf("task %d exited: dropped its entry", s.pid),
		"nothing left to track: exiting",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestCommitReplaces(t *testing.T) {
	k := startKeeper(t)
	s1, s2 := startSleeper(t), startSleeper(t)
	u1, u2 := newUffd(t), newUffd(t)
	commit(t, k.addr, &State{Generation: "g1", Entries: []Entry{s1.entry(u1.fd)}})
	commit(t, k.addr, &State{Generation: "g2", Entries: []Entry{s2.entry(u2.fd)}})
	st := take(t, k.addr)
	if st.Generation != "g2" || len(st.Entries) != 1 || st.Entries[0].Pid != s2.pid || inode(t, st.Entries[0].Fd) != inode(t, u2.fd) {
		t.Fatalf("take = %+v, want g2 with the entry of task %d only", st, s2.pid)
	}
	// The keeper closed its copy of u1 when g2 replaced it.
	if n := countKeeperFds(t, k, inode(t, u1.fd)); n != 0 {
		t.Errorf("keeper still holds %d fds of the replaced uffd", n)
	}
	if n := countKeeperFds(t, k, inode(t, u2.fd)); n != 1 {
		t.Errorf("keeper holds %d fds of the committed uffd, want 1", n)
	}
}

// countKeeperFds counts the keeper's fds on the anonymous inode ino.
func countKeeperFds(t *testing.T, k *testKeeper, ino uint64) int {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", k.pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(dir, e.Name()), &st) == nil && st.Ino == ino {
			n++
		}
	}
	return n
}

func TestRelease(t *testing.T) {
	k := startKeeper(t)
	s := startSleeper(t)
	uffd := newUffd(t)
	commit(t, k.addr, &State{Generation: "g1", Entries: []Entry{s.entry(uffd.fd)}})

	c := dial(t, k.addr)
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	k.mustExit(t, "Release")
	if !strings.Contains(k.logText(t), "released by client pid") {
		t.Errorf("log lacks the release")
	}

	_, err := Dial(k.addr)
	want := "no keeper at " + k.addr + ": tracking was lost (the keeper exited or was killed); the next dump treats every page as written"
	if err == nil || err.Error() != want {
		t.Fatalf("Dial after Release: %v, want %q", err, want)
	}
	if !errors.Is(err, ErrGone) || !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("Dial error %v is not ErrGone and ECONNREFUSED", err)
	}
}

func TestKilledMidConnection(t *testing.T) {
	k := startKeeper(t)
	c := dial(t, k.addr)
	if _, err := c.Take(); err != nil {
		t.Fatal(err)
	}
	unix.PidfdSendSignal(k.pidfd, unix.SIGKILL, nil, 0)
	k.mustExit(t, "SIGKILL")
	_, err := c.Take()
	if !errors.Is(err, ErrGone) || !strings.HasPrefix(err.Error(), "keeper at "+k.addr+" went away: tracking was lost") {
		t.Fatalf("Take from a killed keeper: %v, want ErrGone", err)
	}
}

func TestCommitDropsWrongTask(t *testing.T) {
	k := startKeeper(t)
	good, reused, dead := startSleeper(t), startSleeper(t), startSleeper(t)
	u1, u2, u3 := newUffd(t), newUffd(t), newUffd(t)
	dead.kill(t)
	wrong := reused.entry(u2.fd)
	wrong.StartTime++ // as if the PID now named another task
	commit(t, k.addr, &State{Generation: "g1", Entries: []Entry{wrong, good.entry(u1.fd), dead.entry(u3.fd)}})

	st := take(t, k.addr)
	if len(st.Entries) != 1 || st.Entries[0].Pid != good.pid {
		t.Fatalf("take = %+v, want only the entry of task %d", st, good.pid)
	}
	if inode(t, st.Entries[0].Fd) != inode(t, u1.fd) {
		t.Errorf("the kept entry has the wrong uffd")
	}
	for _, ino := range []uint64{inode(t, u2.fd), inode(t, u3.fd)} {
		if n := countKeeperFds(t, k, ino); n != 0 {
			t.Errorf("keeper kept %d fds of a dropped entry", n)
		}
	}
	log := k.logText(t)
	if !strings.Contains(log, fmt.Sprintf("task %d: start time %d, not %d: another task reused the PID: dropped its entry", reused.pid, reused.start, reused.start+1)) {
		t.Errorf("log lacks the start time mismatch of task %d", reused.pid)
	}
	if !strings.Contains(log, "holding 1 tasks (2 dropped)") {
		t.Errorf("log lacks the commit summary")
	}
}

func TestTaskExitWhileConnected(t *testing.T) {
	k := startKeeper(t)
	s1, s2 := startSleeper(t), startSleeper(t)
	u1, u2 := newUffd(t), newUffd(t)
	c := dial(t, k.addr)
	if err := c.Commit(&State{Generation: "g1", Entries: []Entry{s1.entry(u1.fd), s2.entry(u2.fd)}}); err != nil {
		t.Fatal(err)
	}
	s1.kill(t)
	st, err := c.Take()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(st.Entries) != 1 || st.Entries[0].Pid != s2.pid {
		t.Fatalf("take = %+v, want only task %d", st, s2.pid)
	}
	// With a client connected, the keeper stays even with nothing to hold.
	s2.kill(t)
	time.Sleep(100 * time.Millisecond)
	k.mustRun(t)
	c.Close()
	k.mustExit(t, "the client left with nothing held")
}

func TestEmptyCommit(t *testing.T) {
	k := startKeeper(t)
	c := dial(t, k.addr)
	if err := c.Commit(&State{Generation: "g1"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.Take()
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != "g1" || len(st.Entries) != 0 {
		t.Fatalf("take = %+v, want g1 and no entries", st)
	}
	k.mustRun(t)
	c.Close()
	k.mustExit(t, "the client left with nothing held")
}

func TestManyEntries(t *testing.T) {
	k := startKeeper(t)
	sleepers := []*sleeper{startSleeper(t), startSleeper(t), startSleeper(t)}
	const n = 2*maxFdsPerPacket + 100 // three packets each way
	var entries []Entry
	var inodes []uint64
	for i := range n {
		u := newUffd(t)
		entries = append(entries, sleepers[i%len(sleepers)].entry(u.fd))
		inodes = append(inodes, inode(t, u.fd))
	}
	commit(t, k.addr, &State{Generation: "many", Entries: entries})
	st := take(t, k.addr)
	if st.Generation != "many" || len(st.Entries) != n {
		t.Fatalf("take: generation %q, %d entries; want many, %d", st.Generation, len(st.Entries), n)
	}
	for i, e := range st.Entries {
		if e.Pid != entries[i].Pid || e.StartTime != entries[i].StartTime || inode(t, e.Fd) != inodes[i] {
			t.Fatalf("entry %d = %+v (inode %d), committed %+v (inode %d)", i, e, inode(t, e.Fd), entries[i], inodes[i])
		}
	}
	// One task's exit drops its third of the entries.
	sleepers[0].kill(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dial(t, k.addr)
		st, err := c.Take()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		st.Close()
		if len(st.Entries) == n-(n+2)/3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries 5s after a task exited, want %d", len(st.Entries), n-(n+2)/3)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSecondClientWaits(t *testing.T) {
	k := startKeeper(t)
	first := dial(t, k.addr)
	if err := first.Commit(&State{Generation: "g1"}); err != nil {
		t.Fatal(err)
	}
	second := dial(t, k.addr) // connects: it waits in the backlog
	type result struct {
		st  *State
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := second.Take()
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("second client served while the first is connected: %+v, %v", r.st, r.err)
	case <-time.After(300 * time.Millisecond):
	}
	// The first one still is served meanwhile.
	if err := first.Commit(&State{Generation: "g2"}); err != nil {
		t.Fatal(err)
	}
	first.Close()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.st.Generation != "g2" {
			t.Errorf("second client took %q, want g2", r.st.Generation)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second client not served 5s after the first closed")
	}
}

func TestSignal(t *testing.T) {
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			k := startKeeper(t)
			s := startSleeper(t)
			uffd := newUffd(t)
			commit(t, k.addr, &State{Generation: "g1", Entries: []Entry{s.entry(uffd.fd)}})
			if err := unix.PidfdSendSignal(k.pidfd, sig, nil, 0); err != nil {
				t.Fatal(err)
			}
			k.mustExit(t, sig.String())
			if want := fmt.Sprintf("got %v: closing everything and exiting", sig); !strings.Contains(k.logText(t), want) {
				t.Errorf("log lacks %q", want)
			}
		})
	}
}

func TestStartupTimeout(t *testing.T) {
	k := startKeeper(t, "-startup-timeout", "300ms")
	// A client that connects and leaves without committing does not keep it.
	c := dial(t, k.addr)
	if _, err := c.Take(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	k.mustExit(t, "its startup timeout")
	if !strings.Contains(k.logText(t), "nothing committed within 300ms of start: exiting") {
		t.Errorf("log lacks the startup timeout")
	}
}

// TestOtherUidRefused connects from a thread whose euid is nobody's.
func TestOtherUidRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change a thread's uid")
	}
	k := startKeeper(t)
	const nobody = 65534
	fd := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		// The raw syscall changes this thread only; it is never unlocked, so
		// the runtime discards it when the goroutine ends.
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), nobody, ^uintptr(0)); e != 0 {
			errc <- e
			return
		}
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Connect(s, sockaddr(k.addr)); err != nil {
				unix.Close(s)
			}
		}
		if err != nil {
			errc <- err
			return
		}
		fd <- s
	}()
	var c *Client
	select {
	case s := <-fd:
		c = &Client{fd: s, addr: k.addr}
		defer c.Close()
	case err := <-errc:
		t.Fatal(err)
	}
	_, err := c.Take()
	want := fmt.Sprintf("keeper at %s: the keeper of uid 0 refuses a client of uid %d", k.addr, nobody)
	if err == nil || err.Error() != want {
		t.Fatalf("Take as uid %d: %v, want %q", nobody, err, want)
	}
	// The keeper goes on serving its own uid.
	take(t, k.addr)
	k.mustRun(t)
}

// TestMalformedPacket checks that a garbled packet drops its client, not the
// keeper, and closes the fds that came with it.
func TestMalformedPacket(t *testing.T) {
	k := startKeeper(t)
	uffd := newUffd(t)
	for _, pkt := range []string{
		`garbage`,
		`{"v":1,"op":"commit","gen":"g","entries":[{"pid":1,"start":1},{"pid":1,"start":1}]}`, // 2 entries, 1 fd
		`{"v":1,"op":"state","gen":"g","entries":[{"pid":1,"start":1}]}`,                      // keeper's op
		`{"v":2,"op":"take"}`,
	} {
		c := dial(t, k.addr)
		if err := unix.Sendmsg(c.fd, []byte(pkt), unix.UnixRights(uffd.fd), nil, 0); err != nil {
			t.Fatal(err)
		}
		m, _, err := recvPacket(c.fd, 0)
		if err != nil || m.Op != opError {
			t.Fatalf("answer to %s: %+v, %v; want an error message", pkt, m, err)
		}
		if _, _, err := recvPacket(c.fd, 0); err != io.EOF {
			t.Errorf("after %s: %v, want the keeper to close the connection", pkt, err)
		}
		c.Close()
	}
	if n := countKeeperFds(t, k, inode(t, uffd.fd)); n != 0 {
		t.Errorf("keeper holds %d fds that came with malformed packets", n)
	}
	take(t, k.addr)
	k.mustRun(t)
}

func TestStartFails(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "keeper.log")
	_, _, err := Start([]string{"/bin/false"}, logPath)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready: exit status 1 (see "+logPath+")") {
		t.Fatalf("Start(/bin/false): %v", err)
	}
	st, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestStartSession(t *testing.T) {
	k := startKeeper(t)
	st, err := proc.ReadStat(k.pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.Session != k.pid {
		t.Errorf("keeper %d in session %d, want its own", k.pid, st.Session)
	}
	if !strings.HasPrefix(k.addr, "gockpt-keeper-") || len(k.addr) != len("gockpt-keeper-")+16 {
		t.Errorf("address %q, want gockpt-keeper-<16 hex>", k.addr)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", k.pid)); cwd != "/" {
		t.Errorf("keeper runs in %q, want /", cwd)
	}
}
