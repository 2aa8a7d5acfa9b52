// Package keeper holds the userfaultfds that track which pages a dumped
// process writes between `gockpt pre-dump --track-mem` iterations. The
// kernel tracks only while some reference to the uffd is open, and every
// gockpt run is a short-lived process, so a small daemon (the keeper, the
// hidden `gockpt mem-keeper` command) holds them in between.
//
// The model:
//
//   - The first pre-dump calls Start: the keeper runs in its own session,
//     listens on a random abstract SOCK_SEQPACKET unix socket and signals
//     readiness on fd 3. Its address goes into the images.
//   - Each later pre-dump or dump calls Dial, Take (the held fds and the
//     generation; the keeper forgets the generation at once, so a run that
//     dies before Commit leaves nothing anyone may trust), and Commit (the
//     new set, which replaces the old one). The final dump calls Release.
//   - The keeper serves one client at a time: others wait in the listen
//     backlog until the connected one closes.
//   - The keeper watches every held task with a pidfd and drops the entry of
//     a task that exits. It exits when it holds nothing and no client is
//     connected, when nothing is committed within startupTimeout, on
//     Release, and on SIGTERM or SIGINT.
//
// Threading: Serve is one loop on one goroutine that polls the signal pipe,
// the socket (the listener or the connected client) and the pidfds; the
// only other goroutine forwards signals into that pipe. A Client is used
// from one goroutine at a time.
package keeper

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/proc"
)

// Entry is one tracked task: its uffd and the identity of the task it tracks.
type Entry struct {
	Pid       int
	StartTime uint64 // field 22 of /proc/PID/stat: tells a reused PID apart
	Fd        int    // a uffd fd valid in the calling process
}

// State is what the keeper holds.
type State struct {
	Generation string // "" after a Take that was not followed by Commit
	Entries    []Entry
}

// Close closes the fds of every entry (those Take returned).
func (s *State) Close() {
	for _, e := range s.Entries {
		unix.Close(e.Fd)
	}
}

// startTimeout bounds how long Start waits for the keeper to listen.
const startTimeout = 5 * time.Second

// startupTimeout is how long a keeper waits for its first Commit. A
// variable so that tests need not wait a minute.
var startupTimeout = 60 * time.Second

// sendTimeout bounds one send to a client that stopped reading.
const sendTimeout = 10 * time.Second

// Start launches a keeper: argv is a command line that ends up calling
// Serve; Start appends "--addr", addr, with addr a fresh random abstract
// socket name. The keeper runs in its own session with stdin and stdout on
// /dev/null and stderr appended to logPath ("" = /dev/null), and Start
// returns once it accepts connections. It is a child of the caller, reaped
// by a goroutine should it exit while the caller lives.
func Start(argv []string, logPath string) (addr string, pid int, err error) {
	if len(argv) == 0 || argv[0] == "" {
		return "", 0, errors.New("start keeper: no command")
	}
	addr, err = newAddr()
	if err != nil {
		return "", 0, err
	}
	exe := argv[0]
	if strings.Contains(exe, "/") {
		// The keeper runs in "/", so that it pins no mount.
		if exe, err = filepath.Abs(exe); err != nil {
			return "", 0, fmt.Errorf("start keeper %s: %w", argv[0], err)
		}
	}
	args := append(append([]string{}, argv[1:]...), "--addr", addr)
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	hint := ""
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return "", 0, fmt.Errorf("start keeper: log file: %w", err)
		}
		defer f.Close()
		cmd.Stderr = f
		hint = " (see " + logPath + ")"
	}
	r, w, err := os.Pipe()
	if err != nil {
		return "", 0, fmt.Errorf("start keeper: %w", err)
	}
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w} // fd 3
	err = cmd.Start()
	w.Close()
	if err != nil {
		return "", 0, fmt.Errorf("start keeper %s: %w", exe, err)
	}
	pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	r.SetReadDeadline(time.Now().Add(startTimeout))
	var b [1]byte
	_, err = io.ReadFull(r, b[:])
	if err == nil {
		return addr, pid, nil
	}
	why := "exited before it was ready"
	if errors.Is(err, os.ErrDeadlineExceeded) {
		why = fmt.Sprintf("was not ready within %v; killed it", startTimeout)
	}
	cmd.Process.Kill()
	status := <-exited
	return "", 0, fmt.Errorf("keeper %s (pid %d) %s: %v%s", exe, pid, why, status, hint)
}

// newAddr returns a fresh abstract socket name.
func newAddr() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("keeper address: %w", err)
	}
	return "gockpt-keeper-" + hex.EncodeToString(b[:]), nil
}

// sockaddr is addr in the abstract namespace (x/sys/unix: a leading '@').
func sockaddr(addr string) *unix.SockaddrUnix { return &unix.SockaddrUnix{Name: "@" + addr} }

// Serve is the keeper: it listens on the abstract unix SOCK_SEQPACKET socket
// addr, writes one byte to ready (when not nil) and closes it, and serves
// one client at a time until released, until it has nothing left to track,
// or until a signal. It logs one line per event to stderr.
func Serve(addr string, ready *os.File) error {
	if addr == "" || len(addr) > 106 { // sun_path minus the leading NUL
		return fmt.Errorf("keeper address %q: want 1 to 106 bytes", addr)
	}
	s := &server{
		ln:       -1,
		conn:     -1,
		sigR:     -1,
		deadline: time.Now().Add(startupTimeout),
		log:      log.New(os.Stderr, fmt.Sprintf("gockpt mem-keeper[%d]: ", os.Getpid()), log.LstdFlags|log.Lmicroseconds),
	}
	defer s.closeAll()
	var err error
	if s.ln, err = listen(addr); err != nil {
		return err
	}
	stop, err := s.forwardSignals()
	if err != nil {
		return err
	}
	defer stop()
	if ready != nil {
		_, err := ready.Write([]byte{1})
		ready.Close()
		if err != nil {
			s.log.Printf("tell the starter I am ready: %v", err)
		}
	}
	s.log.Printf("listening on @%s as uid %d", addr, os.Geteuid())
	return s.loop()
}

func listen(addr string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("keeper socket: %w", err)
	}
	if err := unix.Bind(fd, sockaddr(addr)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("keeper: bind @%s: %w", addr, err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("keeper: listen on @%s: %w", addr, err)
	}
	return fd, nil
}

// heldEntry is an entry the keeper holds, with the pidfd that tells it when
// the task exits.
type heldEntry struct {
	Entry
	pidfd int
}

func (h heldEntry) close() {
	unix.Close(h.Fd)
	unix.Close(h.pidfd)
}

type server struct {
	ln, conn  int
	peer      int32 // pid of the connected client
	sigR      int   // read end of the pipe signals are forwarded to
	held      []heldEntry
	gen       string
	committed bool       // something was committed once
	pending   *collector // a commit arriving over several packets
	deadline  time.Time  // for the first commit
	log       *log.Logger
}

// forwardSignals makes SIGTERM and SIGINT readable on s.sigR, for poll.
func (s *server) forwardSignals() (stop func(), err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("keeper: signal pipe: %w", err)
	}
	s.sigR = p[0]
	ch := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT)
	go func() {
		defer close(done)
		for sig := range ch {
			unix.Write(p[1], []byte{byte(sig.(syscall.Signal))})
		}
	}()
	return func() {
		signal.Stop(ch)
		close(ch)
		<-done
		unix.Close(p[1])
	}, nil
}

func (s *server) loop() error {
	for {
		if s.conn < 0 && s.mayExit() {
			if s.clientWaiting() {
				s.accept()
				continue
			}
			if s.committed {
				s.log.Printf("nothing left to track: exiting")
			} else {
				s.log.Printf("nothing committed within %v of start: exiting", startupTimeout)
			}
			return nil
		}
		timeout := -1
		if !s.committed && s.conn < 0 {
			timeout = max(0, int(time.Until(s.deadline)/time.Millisecond)+1)
		}
		sock := s.ln
		if s.conn >= 0 {
			sock = s.conn
		}
		fds := make([]unix.PollFd, 2, 2+len(s.held))
		fds[0] = unix.PollFd{Fd: int32(s.sigR), Events: unix.POLLIN}
		fds[1] = unix.PollFd{Fd: int32(sock), Events: unix.POLLIN}
		for _, h := range s.held {
			fds = append(fds, unix.PollFd{Fd: int32(h.pidfd), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(fds, timeout); err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("keeper: poll: %w", err)
		}
		if fds[0].Revents != 0 {
			var b [1]byte
			unix.Read(s.sigR, b[:])
			s.log.Printf("got %v: closing everything and exiting", syscall.Signal(b[0]))
			return nil
		}
		// Exits first, so that a request sees the tasks that already exited
		// gone.
		s.dropExited(fds[2:])
		if fds[1].Revents == 0 {
			continue
		}
		if s.conn < 0 {
			s.accept()
		} else if released := s.serveOne(); released {
			return nil
		}
	}
}

// mayExit reports that the keeper has nothing to do unless a client comes.
func (s *server) mayExit() bool {
	if s.committed {
		return len(s.held) == 0
	}
	return !time.Now().Before(s.deadline)
}

// clientWaiting reports a client in the listen backlog: one that connected
// while another was served expects an answer.
func (s *server) clientWaiting() bool {
	p := []unix.PollFd{{Fd: int32(s.ln), Events: unix.POLLIN}}
	n, err := unix.Poll(p, 0)
	return err == nil && n > 0
}

// dropExited drops the entries whose pidfd (in polled, same order as
// s.held) reports the task's exit.
func (s *server) dropExited(polled []unix.PollFd) {
	kept := s.held[:0]
	for i, h := range s.held {
		if polled[i].Revents == 0 {
			kept = append(kept, h)
			continue
		}
		h.close()
		s.log.Printf("task %d exited: dropped its entry", h.Pid)
	}
	clear(s.held[len(kept):])
	s.held = kept
}

// accept takes the next client, if it runs as our uid.
func (s *server) accept() {
	fd, _, err := unix.Accept4(s.ln, unix.SOCK_CLOEXEC)
	if err != nil {
		if err != unix.EAGAIN && err != unix.EINTR && err != unix.ECONNABORTED {
			s.log.Printf("accept: %v", err)
		}
		return
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		s.log.Printf("client: SO_PEERCRED: %v: refused", err)
		unix.Close(fd)
		return
	}
	if int(cred.Uid) != os.Geteuid() {
		err := fmt.Errorf("the keeper of uid %d refuses a client of uid %d", os.Geteuid(), cred.Uid)
		s.log.Printf("client pid %d: %v", cred.Pid, err)
		sendPacket(fd, &message{Op: opError, Error: err.Error()}, nil)
		unix.Close(fd)
		return
	}
	tv := unix.NsecToTimeval(sendTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		s.log.Printf("client pid %d: SO_SNDTIMEO: %v: refused", cred.Pid, err)
		unix.Close(fd)
		return
	}
	s.conn, s.peer = fd, cred.Pid
	s.log.Printf("client pid %d connected", s.peer)
}

// serveOne handles one packet from the client.
func (s *server) serveOne() (released bool) {
	m, fds, err := recvPacket(s.conn, 0)
	if err == io.EOF || err == unix.ECONNRESET {
		s.log.Printf("client pid %d disconnected", s.peer)
		s.dropClient()
		return false
	}
	if err != nil {
		s.fail(err)
		return false
	}
	if s.pending != nil && m.Op != opCommit {
		closeFds(fds)
		s.fail(fmt.Errorf("malformed message: %s in the middle of a commit", m.Op))
		return false
	}
	switch m.Op {
	case opTake:
		s.take()
	case opCommit:
		if s.pending == nil {
			s.pending = &collector{}
		}
		done, err := s.pending.add(m, fds)
		if err != nil {
			s.fail(err)
			return false
		}
		if done {
			c := s.pending
			s.pending = nil
			s.commit(c)
			s.reply(&message{Op: opOK})
		}
	case opRelease:
		s.log.Printf("released by client pid %d: closing everything and exiting", s.peer)
		s.reply(&message{Op: opOK})
		return true
	default:
		closeFds(fds)
		s.fail(fmt.Errorf("malformed message: a client sent %s", m.Op))
	}
	return false
}

// take sends what the keeper holds and forgets the generation first: a
// client that dies before its Commit must leave nothing to trust.
func (s *server) take() {
	gen := s.gen
	s.gen = ""
	entries := make([]Entry, len(s.held))
	for i, h := range s.held {
		entries[i] = h.Entry
	}
	if err := sendEntries(s.send, opState, gen, entries); err != nil {
		s.log.Printf("client pid %d: take: %v: dropped the client", s.peer, err)
		s.dropClient()
		return
	}
	s.log.Printf("client pid %d took generation %q (%d tasks); generation now unset", s.peer, gen, len(entries))
}

// commit replaces what the keeper holds with c's entries, keeping those
// whose task still is the one the entry names.
func (s *server) commit(c *collector) {
	var kept []heldEntry
	for _, e := range c.entries {
		pidfd, err := watch(e.Pid, e.StartTime)
		if err != nil {
			s.log.Printf("client pid %d: commit %q: task %d: %v: dropped its entry", s.peer, c.gen, e.Pid, err)
			unix.Close(e.Fd)
			continue
		}
		kept = append(kept, heldEntry{Entry: e, pidfd: pidfd})
	}
	for _, h := range s.held {
		h.close()
	}
	s.held, s.gen, s.committed = kept, c.gen, true
	s.log.Printf("client pid %d committed generation %q: holding %d tasks (%d dropped)", s.peer, c.gen, len(kept), len(c.entries)-len(kept))
}

// watch returns a pidfd for the task pid if it is the one that started at
// startTime and has not exited.
func watch(pid int, startTime uint64) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("pidfd_open: %w", err)
	}
	// The pidfd is taken first: if the PID was reused before it, the stat
	// below shows the new task's start time; if the task exits after it,
	// the poll below sees that.
	st, err := proc.ReadStat(pid)
	if err != nil {
		unix.Close(pidfd)
		return -1, err
	}
	if st.StartTime != startTime {
		unix.Close(pidfd)
		return -1, fmt.Errorf("start time %d, not %d: another task reused the PID", st.StartTime, startTime)
	}
	p := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(p, 0); err == nil && n > 0 {
		unix.Close(pidfd)
		return -1, errors.New("exited")
	}
	return pidfd, nil
}

// fail answers a client that broke the protocol and drops it: what it
// meant is unknown.
func (s *server) fail(err error) {
	s.log.Printf("client pid %d: %v: dropped the client", s.peer, err)
	sendPacket(s.conn, &message{Op: opError, Error: truncate(err.Error(), maxErrLen)}, nil)
	s.dropClient()
}

func (s *server) send(m *message, fds []int) error { return sendPacket(s.conn, m, fds) }

func (s *server) reply(m *message) {
	if err := sendPacket(s.conn, m, nil); err != nil {
		s.log.Printf("client pid %d: %v: dropped the client", s.peer, err)
		s.dropClient()
	}
}

func (s *server) dropClient() {
	if s.pending != nil {
		s.pending.close()
		s.pending = nil
	}
	if s.conn >= 0 {
		unix.Close(s.conn)
	}
	s.conn, s.peer = -1, 0
}

func (s *server) closeAll() {
	s.dropClient()
	for _, h := range s.held {
		h.close()
	}
	s.held = nil
	for _, fd := range []*int{&s.ln, &s.sigR} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// truncate cuts s to at most n bytes of valid UTF-8, which JSON keeps as is.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}
