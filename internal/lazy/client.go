package lazy

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Client is restore's end of the connection to the lazy-pages daemon.
type Client struct {
	fd   int
	sock string
}

// Dial connects to the daemon listening on the unix socket sock.
func Dial(sock string) (*Client, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("no lazy-pages daemon at %s (%w): start `gockpt lazy-pages -D DIR` first, with the same --address (or work directory)", sock, err)
	}
	return &Client{fd: fd, sock: sock}, nil
}

// Send hands task pid's userfaultfd and lazy runs to the daemon and waits
// until it serves them.
func (c *Client) Send(pid int, uffd int, runs []Run) error {
	msg := encodeTask(pid, runs)
	var oob []byte
	if uffd >= 0 {
		oob = unix.UnixRights(uffd)
	}
	n, err := unix.SendmsgN(c.fd, msg, oob, nil, 0)
	if err == nil && n < len(msg) {
		_, err = writeAll(c.fd, msg[n:])
	}
	if err != nil {
		return fmt.Errorf("lazy-pages daemon at %s: sending task %d: %w", c.sock, pid, err)
	}
	var b [1]byte
	if err := readFull(c.fd, b[:]); err != nil || b[0] != 1 {
		if err == nil {
			err = fmt.Errorf("answer %d", b[0])
		}
		return fmt.Errorf("lazy-pages daemon at %s did not take task %d (%w): see its log", c.sock, pid, err)
	}
	return nil
}

// Done tells the daemon every task was sent.
func (c *Client) Done() error { return c.Send(0, -1, nil) }

// Close drops the connection.
func (c *Client) Close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

func writeAll(fd int, b []byte) (int, error) {
	done := 0
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return done, err
		}
		done += n
		b = b[n:]
	}
	return done, nil
}
