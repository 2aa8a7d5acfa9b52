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

	"github.com/gockpt/gockpt/internal/mem"
)

// The standby is a process beside the daemon holding a copy of every
// userfaultfd the daemon serves, and a mirror of what the daemon knows:
// each task's pages not in place yet, kept up to date as the daemon puts
// pages in place and hears of forks, mremap, MADV_DONTNEED and munmap.
//
// Were the daemon to die (killed, out of memory) with pages not in place,
// its userfaultfds alone would go, and the kernel would answer the faults
// with zero pages: the tree would run on with memory lost, silently. With
// the standby's copies the faults wait instead, and the standby, seeing
// the daemon gone without its last word, takes over: with the pages in
// local images it puts the rest in place itself, as the daemon would have;
// with pages that were to come from a page server it kills the restored
// tree and says so.
//
// A page the daemon put in place but did not report before it died is
// found present (UFFDIO_COPY says it exists) and left alone: what is there
// is the dump's page, or what the task wrote since.

// Messages on the daemon's link to the standby (a seqpacket socket): a
// kind byte, the task's number in the daemon, then per kind:
const (
	standbyTask  = 'T' // pid; its userfaultfd comes along
	standbyRuns  = 'R' // runs of lazy pages (start, length)...
	standbyChild = 'C' // the parent's number; the child's userfaultfd comes along
	standbyCut   = 'X' // start, end: in place now, or dropped by the task
	standbyMove  = 'M' // from, to, length: mremap
	standbyGone  = 'G' // the task exited
	standbyDone  = 'D' // the daemon finished (every page in place, or it killed the tree)
)

// runsPerMessage bounds a runs message (16 bytes each).
const runsPerMessage = 2048

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

func (s *Standby) send(kind byte, id int, fd int, vals ...uint64) error {
	if s == nil || s.fd < 0 {
		return nil
	}
	b := make([]byte, 5+8*len(vals))
	b[0] = kind
	binary.LittleEndian.PutUint32(b[1:], uint32(id))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(b[5+8*i:], v)
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	for {
		err := unix.Sendmsg(s.fd, b, oob, nil, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lazy-pages: its standby (PID %d) is gone: %w", s.pid, err)
		}
		return nil
	}
}

func (s *Standby) task(id, pid, uffd int, runs []Run) error {
	if err := s.send(standbyTask, id, uffd, uint64(pid)); err != nil {
		return err
	}
	for len(runs) > 0 {
		n := min(len(runs), runsPerMessage)
		vals := make([]uint64, 0, 2*n)
		for _, r := range runs[:n] {
			vals = append(vals, r.Start, r.Len)
		}
		if err := s.send(standbyRuns, id, -1, vals...); err != nil {
			return err
		}
		runs = runs[n:]
	}
	return nil
}

func (s *Standby) child(id, parent, uffd int) error {
	return s.send(standbyChild, id, uffd, uint64(parent))
}

// cut, move and gone keep the mirror; an error there means the standby
// is gone, which the next task's hand-over reports.
func (s *Standby) cut(id int, start, end uint64) { s.send(standbyCut, id, -1, start, end) }
func (s *Standby) move(id int, from, to, n uint64) {
	s.send(standbyMove, id, -1, from, to, n)
}
func (s *Standby) gone(id int) { s.send(standbyGone, id, -1) }

// Done tells it the daemon finished; it lets go and exits.
func (s *Standby) Done() {
	if s == nil || s.fd < 0 {
		return
	}
	s.send(standbyDone, 0, -1)
	unix.Close(s.fd)
	s.fd = -1
}

// RunStandby is the standby: it mirrors the daemon on the link fd until
// the daemon says it is done (exit status 0), or the link breaks without
// that. Then, with src (the images), it finishes the daemon's work (0 when
// every page went in); without, or if that fails, it kills the restored
// tree (1). report hears what it did.
func RunStandby(fd int, src Source, report func(string)) int {
	tasks := map[int]*task{}
	var order []int
	restored := map[int]bool{}
	oob := make([]byte, unix.CmsgSpace(4))
	buf := make([]byte, 5+16*runsPerMessage)
	done := false
	for !done {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		uffd := -1
		if oobn > 0 {
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if fds, err := unix.ParseUnixRights(&m); err == nil {
						for _, f := range fds {
							if uffd < 0 {
								uffd = f
							} else {
								unix.Close(f)
							}
						}
					}
				}
			}
		}
		if err != nil || n < 5 {
			closeFd(uffd)
			break
		}
		id := int(binary.LittleEndian.Uint32(buf[1:]))
		vals := make([]uint64, (n-5)/8)
		for i := range vals {
			vals[i] = binary.LittleEndian.Uint64(buf[5+8*i:])
		}
		t := tasks[id]
		switch kind := buf[0]; {
		case kind == standbyDone:
			done = true
		case kind == standbyTask && len(vals) == 1 && uffd >= 0:
			pid := int(vals[0])
			tasks[id] = &task{name: fmt.Sprintf("task %d", pid), srcPid: pid, pid: pid, pidfd: -1, u: mem.UffdFromFd(uffd)}
			order = append(order, id)
			restored[pid] = true
			uffd = -1
		case kind == standbyRuns && t != nil:
			for i := 0; i+1 < len(vals); i += 2 {
				t.segs = append(t.segs, seg{vals[i], vals[i] + vals[i+1], vals[i]})
			}
		case kind == standbyChild && len(vals) == 1 && uffd >= 0:
			if p := tasks[int(vals[0])]; p != nil {
				tasks[id] = &task{name: "a child of " + p.name, srcPid: p.srcPid, pidfd: -1, u: mem.UffdFromFd(uffd), segs: append(segs(nil), p.segs...)}
				order = append(order, id)
				uffd = -1
			}
		case kind == standbyCut && t != nil && len(vals) == 2:
			t.segs.cut(vals[0], vals[1])
		case kind == standbyMove && t != nil && len(vals) == 3:
			t.segs.move(vals[0], vals[1], vals[2])
		case kind == standbyGone && t != nil:
			t.close()
			delete(tasks, id)
		}
		closeFd(uffd)
	}
	d := &Daemon{conn: -1, src: src, Prefetch: 8, Push: maxChunk / pageSize}
	for _, id := range order {
		if t := tasks[id]; t != nil {
			if t.pid > 0 {
				t.watch(t.pid)
			}
			d.tasks = append(d.tasks, t)
		}
	}
	defer func() {
		for _, t := range d.tasks {
			t.close()
		}
	}()
	left := d.left()
	if done {
		return 0
	}
	if left == 0 {
		report("lazy-pages standby: the lazy-pages daemon died with 0 pages not in place: nothing was left to do")
		return 0
	}
	var why error = errors.New("its pages were to come from a page server")
	if src != nil {
		buf, err := unix.Mmap(-1, 0, maxChunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err == nil {
			d.buf = buf
			d.standby = true
			st, err := d.Run()
			if err == nil {
				report(fmt.Sprintf("lazy-pages standby: the lazy-pages daemon died with %d pages not in place: the standby put them in place (%d pages, %v)", left, st.Pages, st.Took))
				return 0
			}
			why = err
		} else {
			why = err
		}
	}
	killed := killDescendants(restored)
	sort.Ints(killed)
	report(fmt.Sprintf("lazy-pages standby: the lazy-pages daemon died with %d pages of the restored tree not in place (%v): killed the tree (PIDs %v) rather than let it run on with memory missing", left, why, killed))
	return 1
}
