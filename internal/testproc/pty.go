package testproc

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Pty is a pseudo-terminal for tests: Tty is the terminal a program
// writes to; everything written there is collected from the master side.
type Pty struct {
	Tty    *os.File
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
}

// OpenPty opens a pseudo-terminal (posix_openpt, unlockpt, ptsname by
// their ioctls) and starts collecting what is written to it. The master
// is non-blocking, so that closing it ends a pending read. Cleanup closes
// both sides.
func OpenPty(t testing.TB) *Pty {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Fatalf("pty number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatal(err)
	}
	p := &Pty{Tty: tty, master: master, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return // EIO: no terminal side is open any more
			}
		}
	}()
	t.Cleanup(func() {
		tty.Close()
		master.Close()
		<-p.done
	})
	return p
}

// Output closes the terminal side and returns everything written to it
// once every process that had it open (children included) closed it.
func (p *Pty) Output() string {
	p.Tty.Close()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}
