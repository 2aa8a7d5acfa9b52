package lazy

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
)

const pageSize = mem.PageSize

// Source gives the data of pages as the dump saw them.
type Source interface {
	// ReadPages fills buf with the memory of task pid from addr on.
	ReadPages(pid int, addr uint64, buf []byte) error
	// Close ends a source whose pages are all in place; Abort one whose
	// are not (a page server must not take that for success: a dump
	// serving them would kill its tree).
	Close() error
	Abort()
}

// ImagesSource reads pages from an images directory (and its parents).
type ImagesSource struct {
	dir     *images.Dir
	readers map[int]*pagemap.Reader
}

// NewImagesSource serves pages from dir.
func NewImagesSource(dir *images.Dir) *ImagesSource {
	return &ImagesSource{dir: dir, readers: map[int]*pagemap.Reader{}}
}

func (s *ImagesSource) ReadPages(pid int, addr uint64, buf []byte) error {
	r := s.readers[pid]
	if r == nil {
		var err error
		if r, err = pagemap.Open(s.dir, pid); err != nil {
			return err
		}
		s.readers[pid] = r
	}
	return r.ReadAt(buf, addr)
}

func (s *ImagesSource) Abort() { s.Close() }

func (s *ImagesSource) Close() error {
	for _, r := range s.readers {
		r.Close()
	}
	return nil
}

// Stats is what the daemon did.
type Stats struct {
	Tasks      int
	Pages      uint64 // lazy pages put in place
	Faults     int    // faults answered
	Pushed     uint64 // pages put in place ahead of a fault
	Dropped    uint64 // lazy pages the tasks unmapped or dropped first
	Took       time.Duration
	FaultTimes []time.Duration // per fault, from reading it to its pages in place
}

// Median and P99 of the fault service times.
func (s *Stats) Latency() (median, p99 time.Duration) {
	if len(s.FaultTimes) == 0 {
		return 0, 0
	}
	t := append([]time.Duration(nil), s.FaultTimes...)
	sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
	return t[len(t)/2], t[(len(t)*99)/100]
}

// task is a restored task (or a child it forked since) whose pages are not
// all in place.
type task struct {
	id     int // its number in the daemon (and its standby)
	name   string
	srcPid int // whose pages, in the images
	// pid is the task's PID, 0 for a child forked since restore until
	// its first fault names it; pidfd tells when it exits (-1: unknown).
	pid   int
	pidfd int
	u     *mem.Uffd
	segs  segs
	// stale counts copies that found the mm changed with no event since.
	stale int
}

// maxStale is how many times in a row a copy may find the task's mm
// changed with no event explaining it.
const maxStale = 1000

// watch opens the task's pidfd.
func (t *task) watch(pid int) {
	t.pid = pid
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		t.pidfd = fd
	}
}

func (t *task) close() {
	t.u.Close()
	if t.pidfd >= 0 {
		unix.Close(t.pidfd)
		t.pidfd = -1
	}
}

// Daemon serves the lazy pages of one restore.
type Daemon struct {
	src   Source
	conn  int // the restore's connection; -1 once it sent every task
	tasks []*task
	buf   []byte
	stats Stats
	// again are faults to answer once the task's mm stops changing (a
	// fork, mremap or munmap whose event is being delivered).
	again []pendingFault
	// restored are the PIDs restore handed over.
	restored []int
	// Standby, when set, gets a copy of every userfaultfd and hears what
	// the daemon does, so that it can take over if the daemon dies.
	Standby *Standby
	// standby: this is the standby taking over; a page found present was
	// put there by the daemon before it died, and stays.
	standby bool
	ids     int
	// chunk is the size of the next background copy: small right after a
	// fault (a fault arriving meanwhile waits for it), doubling up to
	// Push while none comes.
	chunk uint64
	// Prefetch is how many pages a fault brings in at most, around it.
	Prefetch uint64
	// Push is how many pages one background copy moves at most.
	Push uint64
}

type pendingFault struct {
	t     *task
	addr  uint64
	begin time.Time
}

// pushFirst is the background copy's size after a fault, in pages.
const pushFirst = 16

// maxChunk bounds one copy.
const maxChunk = 1 << 20

// NewDaemon serves the tasks restore sends on conn (a connected unix
// stream socket, which the daemon owns).
func NewDaemon(conn int, src Source) (*Daemon, error) {
	buf, err := unix.Mmap(-1, 0, maxChunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	return &Daemon{src: src, conn: conn, buf: buf, Prefetch: 8, Push: maxChunk / pageSize}, nil
}

// Run serves until every page is in place, then lets the tasks go (closing
// the userfaultfds). An error leaves the tasks waiting on their faults:
// the caller decides (a standby may finish, or the tree is killed).
func (d *Daemon) Run() (*Stats, error) {
	begin := time.Now()
	defer func() { d.stats.Took = time.Since(begin) }()
	for {
		if d.conn < 0 && d.left() == 0 {
			break
		}
		fds := make([]unix.PollFd, 0, 2*len(d.tasks)+1)
		if d.conn >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(d.conn), Events: unix.POLLIN})
		}
		tasks := append([]*task(nil), d.tasks...)
		for _, t := range tasks {
			fds = append(fds, unix.PollFd{Fd: int32(t.u.Fd()), Events: unix.POLLIN})
		}
		for _, t := range tasks {
			fds = append(fds, unix.PollFd{Fd: int32(t.pidfd), Events: unix.POLLIN})
		}
		timeout := -1
		switch {
		case len(d.again) > 0:
			timeout = 1
		case d.Push > 0 && d.left() > 0:
			timeout = 0
		case d.Push == 0 && d.unnamed():
			timeout = 100
		}
		n, err := unix.Poll(fds, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return &d.stats, fmt.Errorf("poll: %w", err)
		}
		if err := d.retry(); err != nil {
			return &d.stats, err
		}
		if n <= 0 {
			if len(d.again) > 0 {
				continue
			}
			if err := d.push(); err != nil {
				return &d.stats, err
			}
			continue
		}
		i := 0
		if d.conn >= 0 {
			if fds[0].Revents != 0 {
				if err := d.receive(); err != nil {
					return &d.stats, err
				}
			}
			i = 1
		}
		for j, t := range tasks {
			if fds[i+j].Revents != 0 && d.has(t) {
				if err := d.events(t); err != nil {
					return &d.stats, err
				}
			}
		}
		for j, t := range tasks {
			if fds[i+len(tasks)+j].Revents != 0 && d.has(t) {
				// Its events were read above: what it did before it
				// exited is known.
				d.drop(t)
			}
		}
	}
	for _, t := range d.tasks {
		t.close()
	}
	d.tasks = nil
	return &d.stats, nil
}

// left is how many lazy pages are not in place.
func (d *Daemon) left() uint64 {
	var n uint64
	for _, t := range d.tasks {
		n += t.segs.pages()
	}
	return n
}

// receive reads one task from restore and answers it.
func (d *Daemon) receive() error {
	var h [taskHeader]byte
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(d.conn, h[:], oob, 0)
	if err != nil {
		return fmt.Errorf("reading from restore: %w", err)
	}
	if n == 0 {
		return errors.New("restore hung up before it sent every task (did it fail? see its log)")
	}
	fd := -1
	if oobn > 0 {
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) > 0 {
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) > 0 {
				fd = fds[0]
				for _, extra := range fds[1:] {
					unix.Close(extra)
				}
			}
		}
	}
	if n < taskHeader {
		if err := readFull(d.conn, h[n:]); err != nil {
			closeFd(fd)
			return fmt.Errorf("reading from restore: %w", err)
		}
	}
	pid, nruns, err := decodeHeader(h[:])
	if err != nil {
		closeFd(fd)
		return fmt.Errorf("restore sent: %w", err)
	}
	if pid == 0 {
		closeFd(fd)
		if err := ack(d.conn); err != nil {
			return err
		}
		unix.Close(d.conn)
		d.conn = -1
		log.Infof("lazy pages: restore sent every task: %d lazy pages to put in place", d.left())
		return nil
	}
	runs, err := readRuns(fdReader(d.conn), pid, nruns)
	if err != nil {
		closeFd(fd)
		return fmt.Errorf("restore sent: %w", err)
	}
	if fd < 0 {
		return fmt.Errorf("restore sent task %d: %w", pid, errNoFd)
	}
	d.ids++
	t := &task{id: d.ids, name: fmt.Sprintf("task %d", pid), srcPid: pid, u: mem.UffdFromFd(fd), pidfd: -1}
	t.watch(pid)
	if err := d.Standby.task(t.id, pid, fd, runs); err != nil {
		t.close()
		return err
	}
	for _, r := range runs {
		t.segs = append(t.segs, seg{r.Start, r.End(), r.Start})
	}
	d.tasks = append(d.tasks, t)
	d.restored = append(d.restored, pid)
	d.stats.Tasks++
	log.Debugf("lazy pages: %s: %d pages in %d runs", t.name, t.segs.pages(), len(runs))
	return ack(d.conn)
}

func ack(fd int) error {
	if _, err := unix.Write(fd, []byte{1}); err != nil {
		return fmt.Errorf("answering restore: %w", err)
	}
	return nil
}

func closeFd(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// events reads and handles every event waiting on t's userfaultfd.
func (d *Daemon) events(t *task) error {
	var b [mem.UffdMsgSize * 16]byte
	for {
		n, err := unix.Read(t.u.Fd(), b[:])
		if errors.Is(err, unix.EAGAIN) || n == 0 {
			return nil
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: reading its userfaultfd: %w", t.name, err)
		}
		// The kernel hands out waiting faults before events: a fault
		// read with a fork may be answered only once the child has its
		// list (else the page goes into the parent alone, and the child
		// reads zeros there). Events first, then faults.
		var faults []mem.UffdMsg
		for off := 0; off+mem.UffdMsgSize <= n; off += mem.UffdMsgSize {
			m := mem.ParseUffdMsg(b[off : off+mem.UffdMsgSize])
			if m.Event == mem.UffdEventPagefault {
				faults = append(faults, m)
				continue
			}
			if err := d.event(t, m); err != nil {
				return err
			}
		}
		for _, m := range faults {
			if !d.has(t) {
				break
			}
			if err := d.event(t, m); err != nil {
				return err
			}
		}
	}
}

func (d *Daemon) event(t *task, m mem.UffdMsg) error {
	if m.Event != mem.UffdEventPagefault {
		t.stale = 0
	}
	switch m.Event {
	case mem.UffdEventPagefault:
		if t.pid == 0 && m.Tid > 0 {
			if pid := tgid(m.Tid); pid > 0 {
				t.name = fmt.Sprintf("task %d (%s)", pid, t.name)
				t.watch(pid)
			}
		}
		d.stats.Faults++
		return d.fault(t, m.Addr&^(pageSize-1), time.Now())
	case mem.UffdEventFork:
		d.ids++
		child := &task{id: d.ids, name: "a child of " + t.name, srcPid: t.srcPid, u: mem.UffdFromFd(m.Fd), pidfd: -1, segs: append(segs(nil), t.segs...)}
		if err := d.Standby.child(child.id, t.id, m.Fd); err != nil {
			child.close()
			return err
		}
		d.tasks = append(d.tasks, child)
		log.Debugf("lazy pages: %s forked: its child shares %d pages to put in place", t.name, child.segs.pages())
	case mem.UffdEventRemap:
		t.segs.move(m.From, m.To, m.Len)
		d.Standby.move(t.id, m.From, m.To, m.Len)
	case mem.UffdEventRemove, mem.UffdEventUnmap:
		for _, g := range t.segs.cut(m.Start, m.End) {
			d.stats.Dropped += (g.end - g.start) / pageSize
		}
		d.Standby.cut(t.id, m.Start, m.End)
	}
	return nil
}

// fault answers a fault at page addr: the pages around it when they are
// lazy, else a zero page (memory never dumped reads as zeros).
func (d *Daemon) fault(t *task, addr uint64, begin time.Time) error {
	d.chunk = 0
	i := t.segs.find(addr)
	if i < 0 {
		err := t.u.Zero(addr, pageSize)
		if errors.Is(err, unix.EAGAIN) {
			d.again = append(d.again, pendingFault{t, addr, begin})
			return nil
		}
		if err != nil && !errors.Is(err, mem.ErrUffdExist) && !gone(err) {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		t.u.Wake(addr, pageSize)
		d.stats.FaultTimes = append(d.stats.FaultTimes, time.Since(begin))
		return nil
	}
	g := t.segs[i]
	back := min(d.Prefetch/4, (addr-g.start)/pageSize)
	start := addr - back*pageSize
	end := min(g.end, start+d.Prefetch*pageSize)
	again, err := d.copyIn(t, start, end)
	if err != nil {
		return err
	}
	if again && t.segs.find(addr) >= 0 {
		d.again = append(d.again, pendingFault{t, addr, begin})
		return nil
	}
	t.u.Wake(addr, pageSize)
	d.stats.FaultTimes = append(d.stats.FaultTimes, time.Since(begin))
	return nil
}

// retry answers the faults that met a changing mm.
func (d *Daemon) retry() error {
	pending := d.again
	d.again = nil
	for _, f := range pending {
		if !d.has(f.t) {
			continue
		}
		if err := d.fault(f.t, f.addr, f.begin); err != nil {
			return err
		}
	}
	return nil
}

// has tells whether t is still served.
func (d *Daemon) has(t *task) bool {
	for _, o := range d.tasks {
		if o == t {
			return true
		}
	}
	return false
}

// unnamed tells whether a forked child with pages to come has not faulted
// yet: without background copies, one page now and then tells whether it
// still lives.
func (d *Daemon) unnamed() bool {
	for _, t := range d.tasks {
		if t.pid == 0 && len(t.segs) > 0 {
			return true
		}
	}
	return false
}

// tgid is the process of thread tid, 0 if unknown.
func tgid(tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// push puts the next pages of some task in place ahead of its faults.
func (d *Daemon) push() error {
	for _, t := range d.tasks {
		if len(t.segs) == 0 || (d.Push == 0 && t.pid != 0) {
			continue
		}
		g := t.segs[0]
		d.chunk = min(max(d.chunk*2, pushFirst), max(d.Push, 1))
		end := min(g.end, g.start+d.chunk*pageSize)
		before := d.stats.Pages
		_, err := d.copyIn(t, g.start, end)
		d.stats.Pushed += d.stats.Pages - before
		return err
	}
	return nil
}

// copyIn puts [start, end) of t in place (all of it lazy and not in place)
// and takes it off t's list. again: the task's mm is changing; what was
// not copied is back on the list.
func (d *Daemon) copyIn(t *task, start, end uint64) (again bool, err error) {
	pieces := t.segs.cut(start, end)
	// single: copy page by page. One copy may not cross the boundary of
	// two areas (the kernel answers ENOENT), and an area that was one at
	// the dump may be two now (mprotect of a part of it).
	single := false
	for pi, g := range pieces {
		for addr := g.start; addr < g.end; {
			n := min(g.end-addr, uint64(len(d.buf)))
			if single {
				n = pageSize
			}
			data := d.buf[:n]
			if err := d.src.ReadPages(t.srcPid, g.src+(addr-g.start), data); err != nil {
				t.segs.add(append([]seg{{addr, g.end, g.src + (addr - g.start)}}, pieces[pi+1:]...))
				return false, fmt.Errorf("%s: pages at %#x: %w", t.name, addr, err)
			}
			done, err := t.u.Copy(addr, data)
			d.stats.Pages += uint64(done) / pageSize
			if done > 0 {
				d.Standby.cut(t.id, addr, addr+uint64(done))
			}
			switch {
			case err == nil:
			case errors.Is(err, mem.ErrUffdExist):
				// A lazy page is there already: touched before its area
				// was registered (restore's own work), so it holds
				// nothing the task wrote. The dump's page goes over it.
				at := addr + uint64(done)
				if !d.standby {
					if err := d.overwrite(t, at, data[done:done+pageSize]); err != nil {
						return false, err
					}
					d.stats.Pages++
				}
				d.Standby.cut(t.id, at, at+pageSize)
				done += pageSize
			case errors.Is(err, unix.ESRCH):
				d.drop(t) // the task exited
				return false, nil
			case errors.Is(err, unix.ENOENT) && n > pageSize && done < int(n):
				// Maybe an area boundary inside: the rest page by page.
				single = true
			case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOENT):
				// The task's mm is changing, or changed (a fork,
				// mremap or munmap whose event is on its way): the
				// rest goes back on the list, for once the event says
				// where it went. An area that stays away without an
				// event is given up after a while.
				rest := []seg{{addr + uint64(done), g.end, g.src + (addr + uint64(done) - g.start)}}
				if t.stale++; t.stale > maxStale {
					log.Warnf("lazy pages: %s: %#x-%#x cannot be put in place (%v) and no event says why: given up", t.name, rest[0].start, rest[0].end, err)
					d.stats.Dropped += (rest[0].end - rest[0].start) / pageSize
					d.Standby.cut(t.id, rest[0].start, rest[0].end)
					rest = nil
					t.stale = 0
				}
				t.segs.add(append(rest, pieces[pi+1:]...))
				return true, nil
			default:
				return false, fmt.Errorf("%s: %w", t.name, err)
			}
			addr += uint64(done)
		}
	}
	return false, nil
}

// overwrite writes a page that is present already.
func (d *Daemon) overwrite(t *task, addr uint64, page []byte) error {
	if t.pid == 0 {
		return fmt.Errorf("%s: lazy page %#x is already present and its task is not known: it cannot be put in place", t.name, addr)
	}
	local := []unix.Iovec{{Base: &page[0]}}
	local[0].SetLen(len(page))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(page)}}
	if _, err := unix.ProcessVMWritev(t.pid, local, remote, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("%s: lazy page %#x was present already; writing it: %w", t.name, addr, err)
	}
	log.Debugf("lazy pages: %s: page %#x was present already: written over", t.name, addr)
	return nil
}

// gone reports errors of a task that exited or of an area it unmapped.
func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EFAULT)
}

// drop forgets a task that exited.
func (d *Daemon) drop(t *task) {
	for i, o := range d.tasks {
		if o == t {
			d.tasks = append(d.tasks[:i], d.tasks[i+1:]...)
			break
		}
	}
	d.stats.Dropped += t.segs.pages()
	log.Debugf("lazy pages: %s exited with %d pages not in place", t.name, t.segs.pages())
	d.Standby.gone(t.id)
	t.close()
}

// CloseSource ends the source (a page server's session) once every page is
// in place.
func (d *Daemon) CloseSource() error {
	src := d.src
	d.src = nil
	if src == nil {
		return nil
	}
	return src.Close()
}

// Close releases what the daemon holds: a daemon that did not finish lets
// go of the userfaultfds here.
func (d *Daemon) Close() {
	for _, t := range d.tasks {
		t.close()
	}
	d.tasks = nil
	if d.conn >= 0 {
		unix.Close(d.conn)
		d.conn = -1
	}
	if d.buf != nil {
		unix.Munmap(d.buf)
		d.buf = nil
	}
	if d.src != nil {
		d.src.Abort()
		d.src = nil
	}
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return errors.New("unexpected end of the connection")
		}
		b = b[n:]
	}
	return nil
}

type fdReader int

func (r fdReader) Read(b []byte) (int, error) {
	if err := readFull(int(r), b); err != nil {
		return 0, err
	}
	return len(b), nil
}
