package dump

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/keeper"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/mem"
	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// incremental is what one pre-dump or incremental dump knows about the
// previous iteration, shared by every task.
//
// How the uffd-wp tracker survives between gockpt runs: the userfaultfd
// is created inside the target (an injected userfaultfd(2)), copied out
// with pidfd_getfd and closed in the target at once, so the target never
// holds it. The kernel tracks writes only while some reference to it
// lives, so a small keeper process (gockpt mem-keeper) holds the copies
// between runs, together with a generation: a random name for the moment
// the trackers were last re-armed, also written to the pre-dump's
// gockpt-track.json. Taking the fds from the keeper clears its
// generation; only a completed pre-dump sets a new one. So a run that died
// half-way, a keeper that is gone, a target that exited, or a dump against
// an older pre-dump than the last one all show up as a mismatch, and then
// every page is dirty.
type incremental struct {
	backend   Backend
	preDump   bool
	parentDir *images.Dir
	prev      *trackState
	// trusted: the kernel trackers ran uninterrupted since the parent
	// pre-dump armed them.
	trusted bool

	keeperAddr string
	keeperPid  int
	keeper     *keeper.Client
	held       *keeper.State     // what the keeper handed over
	uffds      map[int]*heldUffd // by PID
	// armed is what this pre-dump leaves tracked, for TrackFile.
	armed []trackedTask
	// genFile holds the soft-dirty generation (no keeper needed there).
	genFile string
	// parents are the parent images' pagemaps by PID, read before the
	// tree is frozen: they do not change, and reading them takes time.
	parents map[int]*pagemap.Reader
}

type heldUffd struct {
	u         *mem.Uffd
	startTime uint64
}

// setupIncremental reads the previous iteration, if any, and decides
// whether its tracking can be trusted. It returns nil for a plain full
// dump.
func (d *dumper) setupIncremental(preDump bool) (*incremental, error) {
	o := d.opts
	if o.PrevImagesDir == "" && !(preDump && o.TrackMem) {
		return nil, nil
	}
	backend, err := chooseBackend(o.TrackMem, o.TrackBackend)
	if err != nil {
		return nil, err
	}
	inc := &incremental{backend: backend, preDump: preDump, uffds: map[int]*heldUffd{}}
	if o.PrevImagesDir != "" {
		if inc.parentDir, err = linkParent(d.dir, o.PrevImagesDir); err != nil {
			return nil, err
		}
		if inc.prev, err = readTrackState(inc.parentDir); err != nil {
			return nil, err
		}
		if inc.parents, err = openParentPagemaps(inc.parentDir); err != nil {
			inc.close()
			return nil, err
		}
	}
	rootStart := startTime(o.Pid)
	switch {
	case inc.prev == nil:
		if inc.parentDir != nil && backend != BackendHashes {
			log.Warnf("the parent images %s were not made by gockpt pre-dump --track-mem: every page counts as written", inc.parentDir.Path())
		}
	case inc.prev.Backend != backend && backend != BackendHashes:
		log.Warnf("the parent pre-dump tracked memory with %s, this run uses %s: every page counts as written", inc.prev.Backend, backend)
	case backend == BackendSoftDirty:
		inc.genFile = softDirtyGenFile(o.Pid, rootStart)
		g, _ := os.ReadFile(inc.genFile)
		inc.trusted = inc.prev.Generation != "" && strings.TrimSpace(string(g)) == inc.prev.Generation
		if !inc.trusted {
			log.Warnf("soft-dirty bits were cleared by a later pre-dump than %s (or never): every page counts as written", inc.parentDir.Path())
		}
	}
	if backend == BackendSoftDirty && inc.genFile == "" {
		inc.genFile = softDirtyGenFile(o.Pid, rootStart)
	}
	// The keeper: take over what it holds.
	if inc.prev != nil && inc.prev.KeeperAddr != "" {
		inc.keeperAddr, inc.keeperPid = inc.prev.KeeperAddr, inc.prev.KeeperPid
		c, err := keeper.Dial(inc.keeperAddr)
		if err != nil {
			log.Warnf("%v", err)
		} else {
			inc.keeper = c
			st, err := c.Take()
			if err != nil {
				c.Close()
				inc.keeper = nil
				log.Warnf("memory tracker keeper: %v: every page counts as written", err)
			} else {
				inc.held = st
				for _, e := range st.Entries {
					inc.uffds[e.Pid] = &heldUffd{u: mem.UffdFromFd(e.Fd), startTime: e.StartTime}
				}
				if backend == BackendUffdWP && inc.prev.Backend == BackendUffdWP {
					inc.trusted = st.Generation != "" && st.Generation == inc.prev.Generation
					if !inc.trusted {
						log.Warnf("the memory trackers were re-armed or reset after the pre-dump in %s (keeper generation %q, images %q): every page counts as written", inc.parentDir.Path(), st.Generation, inc.prev.Generation)
					}
				}
			}
		}
	}
	if preDump && backend == BackendUffdWP && inc.keeper == nil {
		logPath := ""
		if p, err := filepath.Abs(d.dir.Join("mem-keeper.log")); err == nil {
			logPath = p
		}
		addr, pid, err := keeper.Start(o.KeeperArgs, logPath)
		if err != nil {
			inc.close()
			return nil, fmt.Errorf("starting the memory tracker keeper: %w", err)
		}
		c, err := keeper.Dial(addr)
		if err != nil {
			unix.Kill(pid, unix.SIGTERM)
			inc.close()
			return nil, err
		}
		inc.keeperAddr, inc.keeperPid, inc.keeper = addr, pid, c
		log.Infof("memory tracker keeper %d at @%s", pid, addr)
	}
	log.Infof("incremental %s: tracker %s, parent %v, tracking trusted: %v", map[bool]string{true: "pre-dump", false: "dump"}[preDump], backend, inc.parentDir != nil, inc.trusted)
	return inc, nil
}

// softDirtyGenFile keeps the generation of the last clear_refs for a tree,
// named by its root's PID and start time.
func softDirtyGenFile(pid int, start uint64) string {
	return filepath.Join(runDir(), fmt.Sprintf("soft-dirty-%d-%d", pid, start))
}

func runDir() string {
	if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
		return "/run/gockpt"
	}
	return filepath.Join(os.TempDir(), "gockpt")
}

func startTime(pid int) uint64 {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0
	}
	return st.StartTime
}

// taskTrack opens what the incremental run knows about one task.
func (inc *incremental) taskTrack(pid int, start uint64, rearm bool) (*taskTrack, error) {
	if inc == nil {
		return nil, nil
	}
	parent := inc.parents[pid]
	tt := &taskTrack{backend: inc.backend, parent: parent, rearm: rearm, tracker: mem.NoTracker{Backend: string(inc.backend)}}
	switch inc.backend {
	case BackendSoftDirty:
		tt.tracker = mem.SoftDirtyTracker{}
	case BackendUffdWP:
		if h := inc.uffds[pid]; h != nil && h.startTime == start {
			tt.tracker = mem.UffdTracker{U: h.u}
		}
	}
	if _, none := tt.tracker.(mem.NoTracker); inc.trusted && !none {
		tt.prev = inc.prev.task(pid, start)
	}
	if inc.backend == BackendHashes && parent != nil {
		var err error
		if tt.parentHashes, err = loadHashes(inc.parentDir, pid, parent); err != nil {
			return nil, err
		}
	}
	return tt, nil
}

// uffdFor returns the task's userfaultfd: the one the keeper held for it,
// or a new one made inside the task. nil (with a warning) when the task
// cannot have one: its pages are then dirty every time.
func (inc *incremental) uffdFor(t *ptrace.Task, start uint64, wd *parasite.Watchdog) *mem.Uffd {
	if ownsUffd(t.Pid) {
		// A task that uses userfaultfd itself would get EBUSY registering
		// an area our tracker holds: it is not tracked, never in the way.
		log.Warnf("task %d uses a userfaultfd of its own: its memory is not tracked (every page counts as written), so that gockpt never stands in its way", t.Pid)
		inc.dropUffd(t.Pid)
		return nil
	}
	if h := inc.uffds[t.Pid]; h != nil {
		if h.startTime == start {
			return h.u
		}
		h.u.Close() // the PID was reused: that tracker followed another process
		delete(inc.uffds, t.Pid)
	}
	u, err := newTargetUffd(t, wd)
	if err != nil {
		log.Warnf("task %d: no memory tracker: %v; its pages count as written in every iteration", t.Pid, err)
		return nil
	}
	inc.uffds[t.Pid] = &heldUffd{u: u, startTime: start}
	return u
}

// ownsUffd reports whether the task holds a userfaultfd.
func ownsUffd(pid int) bool {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && l == "anon_inode:[userfaultfd]" {
			return true
		}
	}
	return false
}

// dropUffd forgets the task's tracker (closing our copy).
func (inc *incremental) dropUffd(pid int) {
	if h := inc.uffds[pid]; h != nil {
		h.u.Close()
		delete(inc.uffds, pid)
	}
}

// staleUffd reports whether u tracks an address space the task no longer
// has (it exec'd): registering one of its areas then fails with ENOMEM
// (the kernel cannot take a reference on the old mm) or ESRCH.
func staleUffd(u *mem.Uffd, plans []vmaPlan) bool {
	for _, p := range plans {
		if !p.dumpPages {
			continue
		}
		err := u.RegisterWP(p.entry.GetStart(), p.entry.GetEnd()-p.entry.GetStart())
		return errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ESRCH)
	}
	return false
}

// newTargetUffd creates a userfaultfd in the task's own mm (only the task
// can), takes a copy with pidfd_getfd and closes the task's fd at once.
func newTargetUffd(t *ptrace.Task, wd *parasite.Watchdog) (*mem.Uffd, error) {
	te := t.Threads[0]
	// The task holds no userfaultfd (uffdFor checked): should gockpt die
	// from here on, the watchdog closes any it finds.
	if err := wd.UffdPending(t.Pid); err != nil {
		return nil, err
	}
	ret, err := te.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK|mem.UffdUserModeOnly)
	if err != nil {
		return nil, err
	}
	if e := ptrace.Errno(ret); e != 0 {
		wd.FdClosed(t.Pid)
		return nil, fmt.Errorf("userfaultfd(2) in the task: %w (a seccomp filter or vm.unprivileged_userfaultfd may forbid it)", e)
	}
	tfd := int(ret)
	// Should gockpt die before the close, the watchdog closes it.
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", t.Pid, tfd), &st); err == nil {
		wd.TempFd(t.Pid, tfd, st.Ino)
	}
	defer func() {
		if r, err := te.Syscall(unix.SYS_CLOSE, uint64(tfd)); err == nil && ptrace.Errno(r) == 0 {
			wd.FdClosed(t.Pid)
		}
	}()
	pidfd, err := unix.PidfdOpen(t.Pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, tfd, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_getfd: %w", err)
	}
	u := mem.UffdFromFd(fd)
	if _, err := u.HandshakeWPAsync(); err != nil {
		u.Close()
		return nil, err
	}
	return u, nil
}

// commit hands the trackers to the keeper under a new generation (or none,
// after a failure) and returns the generation.
func (inc *incremental) commit(ok bool) (string, error) {
	gen := ""
	if ok {
		gen = newGeneration()
	}
	if inc.backend == BackendSoftDirty && ok && inc.preDump {
		if err := os.MkdirAll(filepath.Dir(inc.genFile), 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(inc.genFile, []byte(gen+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	if inc.keeper == nil {
		return gen, nil
	}
	st := &keeper.State{Generation: gen}
	for pid, h := range inc.uffds {
		st.Entries = append(st.Entries, keeper.Entry{Pid: pid, StartTime: h.startTime, Fd: h.u.Fd()})
	}
	if err := inc.keeper.Commit(st); err != nil {
		return "", fmt.Errorf("memory tracker keeper: %w", err)
	}
	return gen, nil
}

// abort ends a failed run. A dump changed no tracker state: the keeper
// gets back what it held, generation included, and a retry can trust it.
// A pre-dump may have re-armed some trackers: the keeper keeps them, with
// no generation, so the next run trusts none.
func (inc *incremental) abort() {
	if inc == nil || inc.keeper == nil {
		return
	}
	var err error
	if inc.preDump {
		_, err = inc.commit(false)
	} else if inc.held != nil {
		err = inc.keeper.Commit(inc.held)
	}
	if err != nil {
		log.Warnf("memory tracker keeper: %v", err)
	}
}

// release ends tracking after a final dump: the keeper closes the
// userfaultfds, so the kernel unregisters them from the tasks' memory.
func (inc *incremental) release() {
	if inc == nil || inc.keeperAddr == "" {
		return
	}
	c := inc.keeper
	if c == nil {
		var err error
		if c, err = keeper.Dial(inc.keeperAddr); err != nil {
			return // gone already
		}
		defer c.Close()
	}
	if err := c.Release(); err != nil {
		log.Warnf("memory tracker keeper: release: %v", err)
	}
}

// close drops this process's copies of the trackers and the keeper
// connection.
func (inc *incremental) close() {
	if inc == nil {
		return
	}
	for _, h := range inc.uffds {
		h.u.Close()
	}
	for _, r := range inc.parents {
		r.Close()
	}
	if inc.keeper != nil {
		inc.keeper.Close()
	}
}
