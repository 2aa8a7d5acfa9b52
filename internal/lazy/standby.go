package lazy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// The standby is a process beside the daemon holding a copy of every
// userfaultfd the daemon serves. Were the daemon to die (killed, out of
// memory) with pages not in place, its userfaultfds alone would go, and the
// kernel would then answer the faults with zero pages: the tree would run
// on with memory lost, silently. With the standby's copies the faults wait
// instead, and the standby, seeing the daemon gone without its last word,
// kills the restored tree and says so.

// Messages on the daemon's link to the standby (a seqpacket socket): a
// kind byte and a PID, with a userfaultfd for tasks.
const (
	standbyTask  = 'T' // a restored task and its userfaultfd
	standbyChild = 'C' // a child forked since restore: its userfaultfd
	standbyDone  = 'D' // the daemon finished: every page is in place, or it killed the tree itself
)

// Standby is the daemon's end of the link.
type Standby struct {
	fd  int
	pid int
}

// StartStandby starts the standby: argv is a gockpt binary running its
// lazy-standby command, which finds the link on fd 3.
func StartStandby(argv []string) (*Standby, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	theirs := os.NewFile(uintptr(fds[1]), "standby link")
	defer theirs.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	// Its own session: whoever kills the daemon's group does not kill it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("lazy-pages: starting its standby: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	return &Standby{fd: fds[0], pid: pid}, nil
}

// Pid is the standby's PID.
func (s *Standby) Pid() int { return s.pid }

func (s *Standby) send(kind byte, pid int, uffd int) error {
	if s == nil {
		return nil
	}
	var b [5]byte
	b[0] = kind
	binary.LittleEndian.PutUint32(b[1:], uint32(pid))
	var oob []byte
	if uffd >= 0 {
		oob = unix.UnixRights(uffd)
	}
	if err := unix.Sendmsg(s.fd, b[:], oob, nil, 0); err != nil {
		return fmt.Errorf("lazy-pages: its standby (PID %d) is gone: %w", s.pid, err)
	}
	return nil
}

// Task hands the standby a copy of a restored task's userfaultfd.
func (s *Standby) Task(pid, uffd int) error { return s.send(standbyTask, pid, uffd) }

// Child hands it a forked child's.
func (s *Standby) Child(parent, uffd int) error { return s.send(standbyChild, parent, uffd) }

// Done tells it the daemon finished; it lets go and exits.
func (s *Standby) Done() {
	if s == nil {
		return
	}
	s.send(standbyDone, 0, -1)
	unix.Close(s.fd)
	s.fd = -1
}

// RunStandby is the standby: it reads the link on fd until the daemon says
// it is done (exit status 0), or the link breaks without that: then it
// kills the restored tree (exit status 1). report hears what it did.
func RunStandby(fd int, report func(string)) int {
	var uffds []int
	restored := map[int]bool{}
	defer func() {
		for _, u := range uffds {
			unix.Close(u)
		}
	}()
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		var b [5]byte
		n, oobn, _, _, err := unix.Recvmsg(fd, b[:], oob, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if oobn > 0 {
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if fds, err := unix.ParseUnixRights(&m); err == nil {
						uffds = append(uffds, fds...)
					}
				}
			}
		}
		if err != nil || n == 0 {
			break
		}
		switch b[0] {
		case standbyDone:
			return 0
		case standbyTask:
			restored[int(binary.LittleEndian.Uint32(b[1:]))] = true
		}
	}
	if len(restored) == 0 {
		return 0
	}
	killed := killDescendants(restored)
	sort.Ints(killed)
	report(fmt.Sprintf("lazy-pages standby: the lazy-pages daemon died with pages of the restored tree not in place: killed the tree (PIDs %v) rather than let it run on with memory missing", killed))
	return 1
}
