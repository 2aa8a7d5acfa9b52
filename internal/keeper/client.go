package keeper

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrGone matches (errors.Is) the errors of a Client whose keeper is not
// there any more: the tracking it held is lost.
var ErrGone = errors.New("keeper gone")

// goneError says the keeper is gone, in words for the user.
type goneError struct {
	what string // "no keeper at ADDR", "keeper at ADDR went away"
	err  error
}

func (e *goneError) Error() string {
	return e.what + ": tracking was lost (the keeper exited or was killed); the next dump treats every page as written"
}

func (e *goneError) Unwrap() []error { return []error{ErrGone, e.err} }

// Client is a connection to a keeper. While it is open, other clients wait.
// It is used from one goroutine at a time.
type Client struct {
	fd   int
	addr string
}

// Dial connects to the keeper at addr. It refuses a keeper that runs as
// another uid: anyone can bind an abstract name once the keeper is gone.
func Dial(addr string) (*Client, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("keeper at %s: socket: %w", addr, err)
	}
	for {
		err = unix.Connect(fd, sockaddr(addr))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		if err == unix.ECONNREFUSED || err == unix.ENOENT {
			return nil, &goneError{what: "no keeper at " + addr, err: err}
		}
		return nil, fmt.Errorf("connect to the keeper at %s: %w", addr, err)
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("keeper at %s: SO_PEERCRED: %w", addr, err)
	}
	if int(cred.Uid) != os.Geteuid() {
		unix.Close(fd)
		return nil, fmt.Errorf("keeper at %s (pid %d) runs as uid %d, not %d: refusing it", addr, cred.Pid, cred.Uid, os.Geteuid())
	}
	return &Client{fd: fd, addr: addr}, nil
}

// Take returns what the keeper holds: the fds are new in the caller
// (O_CLOEXEC) and the caller's to close (State.Close). The keeper forgets
// its generation as it answers, so the caller must Commit to set one again.
func (c *Client) Take() (*State, error) {
	if err := c.send(&message{Op: opTake}, nil); err != nil {
		return nil, err
	}
	var col collector
	for {
		m, fds, err := c.recv(opState)
		if err != nil {
			col.close()
			return nil, err
		}
		done, err := col.add(m, fds)
		if err != nil {
			col.close()
			return nil, fmt.Errorf("keeper at %s: take: %w", c.addr, err)
		}
		if done {
			return &State{Generation: col.gen, Entries: col.entries}, nil
		}
	}
}

// Commit hands the keeper the set to hold from now on, in place of what it
// held. The keeper gets its own copies of the fds; the caller still owns
// (and should close) s's. The keeper drops, without failing the commit, an
// entry whose task has exited or whose PID now names another task (its
// StartTime differs).
func (c *Client) Commit(s *State) error {
	if s == nil {
		return fmt.Errorf("keeper at %s: commit of no state", c.addr)
	}
	if len(s.Generation) > maxGenLen {
		return fmt.Errorf("keeper at %s: commit: generation of %d bytes, limit %d", c.addr, len(s.Generation), maxGenLen)
	}
	if len(s.Entries) > maxEntries {
		return fmt.Errorf("keeper at %s: commit: %d entries, limit %d", c.addr, len(s.Entries), maxEntries)
	}
	for _, e := range s.Entries {
		if err := checkPid(e.Pid); err != nil {
			return fmt.Errorf("keeper at %s: commit: %w", c.addr, err)
		}
		if e.Fd < 0 {
			return fmt.Errorf("keeper at %s: commit: task %d: bad fd %d", c.addr, e.Pid, e.Fd)
		}
	}
	if err := sendEntries(c.send, opCommit, s.Generation, s.Entries); err != nil {
		return err
	}
	_, _, err := c.recv(opOK)
	return err
}

// Release tells the keeper to close everything and exit; it answers first.
func (c *Client) Release() error {
	if err := c.send(&message{Op: opRelease}, nil); err != nil {
		return err
	}
	_, _, err := c.recv(opOK)
	return err
}

// Close closes the connection, which lets the next client in.
func (c *Client) Close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

func (c *Client) send(m *message, fds []int) error {
	if c.fd < 0 {
		return fmt.Errorf("keeper at %s: %s on a closed client", c.addr, m.Op)
	}
	if err := sendPacket(c.fd, m, fds); err != nil {
		return c.lost(err)
	}
	return nil
}

// recv receives one packet, which must be a want or an error from the
// keeper.
func (c *Client) recv(want string) (*message, []int, error) {
	m, fds, err := recvPacket(c.fd, 0)
	if err != nil {
		return nil, nil, c.lost(err)
	}
	switch m.Op {
	case want:
		return m, fds, nil
	case opError:
		return nil, nil, fmt.Errorf("keeper at %s: %s", c.addr, m.Error)
	}
	closeFds(fds)
	return nil, nil, fmt.Errorf("keeper at %s: malformed message: %s instead of %s", c.addr, m.Op, want)
}

// lost names a failed exchange: a closed connection means the keeper died,
// unless it answered with an error before it closed (it refused us, or what
// we sent). The kernel reports the reset before that answer when the keeper
// closed with our packet unread.
func (c *Client) lost(err error) error {
	if err != io.EOF && !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, unix.EPIPE) {
		return fmt.Errorf("keeper at %s: %w", c.addr, err)
	}
	if m, fds, rerr := recvPacket(c.fd, unix.MSG_DONTWAIT); rerr == nil {
		closeFds(fds)
		if m.Op == opError {
			return fmt.Errorf("keeper at %s: %s", c.addr, m.Error)
		}
	}
	return &goneError{what: "keeper at " + c.addr + " went away", err: err}
}
