// Package dump checkpoints a process tree into CRIU-compatible images.
//
// Order of work, and why:
//  1. Refuse early what cannot be dumped (PID 1, kernel threads, missing
//     tasks, gockpt's own ancestors) before touching anything.
//  2. Seize the whole tree (ptrace.SeizeTree): from then on nothing in the
//     tree runs, so everything read afterwards is one consistent moment.
//  3. Per task, parents first: /proc and ptrace from outside, then the
//     parasite for what only the task can tell, then memory.
//  4. Write the images; only a complete dump kills the tree (CRIU's
//     default) or lets it run on (--leave-running).
//
// Whatever fails, the deferred cleanup cures every parasite and detaches
// every thread, so a failed dump leaves the tree running as it was.
package dump

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/parasite"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/progress"
	"github.com/gockpt/gockpt/internal/ptrace"
	"github.com/gockpt/gockpt/internal/support"
)

// Options says what to dump and how.
type Options struct {
	Pid          int
	ImagesDir    string
	LeaveRunning bool
	LeaveStopped bool
	// Timeout bounds the time the tree may stay frozen before dump gives
	// up and lets it run again.
	Timeout    time.Duration
	GhostLimit int64
	// ExtUnixSk keeps dgram unix sockets whose peer is outside the tree
	// (--ext-unix-sk).
	ExtUnixSk bool
	// ShellJob keeps the terminal of a shell job (--shell-job).
	ShellJob bool
	// FileLocks keeps the tree's file locks (CRIU's --file-locks) in
	// filelocks.img; without it dump refuses a tree holding one.
	FileLocks bool
	// TCPEstablished keeps established TCP connections (CRIU's
	// --tcp-established); TCPClose keeps them for restore to make closed
	// (--tcp-close); SkipInFlight leaves out connections not accepted
	// yet (--skip-in-flight).
	TCPEstablished, TCPClose, SkipInFlight bool
	// NetworkLock is how established connections are locked while the
	// tree is dumped: NetworkLockNftables (default) or NetworkLockSkip.
	NetworkLock string
	// PageServer (host:port), when set, receives the pages instead of
	// pages-N.img files (CRIU's --page-server --address --port), over TLS
	// when PageServerTLS is set.
	PageServer    string
	PageServerTLS *tls.Config
	// Compress compresses the pages sent to the page server (gockpt's
	// extension: the server must be gockpt's).
	Compress bool
	// LazyPages (post-copy) leaves the lazy pages out of the images and,
	// once they are written, serves them from the frozen tree on
	// LazyListen (host:port; TLS with LazyTLS) until the destination's
	// lazy-pages daemon has them all; then the tree is killed.
	// LazyReady hears where, once the images are complete.
	LazyPages  bool
	LazyListen string
	LazyTLS    *tls.Config
	LazyReady  func(addr string)
	// PageReader chooses how memory is read (default: by the parasite).
	PageReader PageReader
	// LSM reads security labels; nil means lsm.Detect().
	LSM lsm.LSM
	// WatchdogArgs, when set, start the parasite watchdog (argv of a gockpt
	// binary running its watchdog command), which removes parasite
	// leftovers if this process is killed mid-dump.
	WatchdogArgs []string

	// TrackMem uses a kernel dirty tracker (TrackBackend, or the best one
	// here) for incremental dumps; PrevImagesDir (relative to ImagesDir,
	// as CRIU takes it) names the previous iteration. With PrevImagesDir
	// alone pages are compared by content.
	TrackMem      bool
	PrevImagesDir string
	TrackBackend  Backend
	// KeeperArgs start the memory tracker keeper (argv of a gockpt binary
	// running its mem-keeper command), which holds userfaultfds between
	// pre-dumps.
	KeeperArgs []string

	// AfterTask, when set, is called after each task's images are
	// written; an error fails the dump there, as a refusal found midway
	// would (tests use it).
	AfterTask func(pid int) error
	// AfterImages, when set, is called once every image is written,
	// before they are checked against the tree and the tree is let go
	// (tests damage images there).
	AfterImages func() error
	// Progress hears the pages to write and written; nil: nobody.
	Progress progress.Sink
}

// Stats is what a dump did, as CRIU's stats-dump image records it.
type Stats struct {
	Tasks, Threads int
	PagesScanned   uint64
	PagesWritten   uint64
	// PagesSkippedParent are pages left in the parent images: unchanged
	// since the previous iteration.
	PagesSkippedParent uint64
	FreezingTime       time.Duration
	FrozenTime         time.Duration
	MemdumpTime        time.Duration
	MemwriteTime       time.Duration
	// DroppedDatagrams (and their bytes) were waiting in UDP sockets:
	// restore cannot put them back.
	DroppedDatagrams, DroppedBytes int
}

// Run dumps the tree rooted at o.Pid into o.ImagesDir.
func Run(o Options) (*Stats, error) {
	d, err := newDumper(o, false)
	if err != nil {
		return nil, err
	}
	defer d.files.Close()
	defer d.abortPageServer()
	defer d.lazy.close()
	if err := d.startWatchdog(); err != nil {
		return nil, err
	}
	defer d.watchdog.Close()

	if d.inc, err = d.setupIncremental(false); err != nil {
		return nil, err
	}
	defer d.inc.close()

	tracer := ptrace.NewTracer()
	// A task that will not stop (a parent in vfork, uninterruptible
	// sleep) is refused after --timeout, not waited for.
	tracer.SetStopTimeout(o.Timeout)
	defer tracer.Close()
	// Every ptrace request of the dump is made from the tracer's thread:
	// running the frozen part there saves a hop between threads per
	// request.
	var finishErr error
	err = tracer.Do(func() error {
		var err error
		finishErr, err = d.frozen(tracer)
		return err
	})
	if err != nil {
		return nil, err
	}
	// A complete dump ends the iteration: the trackers are let go.
	d.inc.release()
	return d.stats, finishErr
}

// frozen freezes the tree, dumps it, and kills it (or lets it go). err is
// a dump that failed, the tree left as it was; finishErr an error of the
// kill or the detach after a complete dump.
func (d *dumper) frozen(tracer *ptrace.Tracer) (finishErr, err error) {
	o := d.opts
	frozenAt, err := d.freeze(tracer)
	if err != nil {
		return nil, err
	}

	if o.Timeout > 0 {
		timer := time.AfterFunc(o.Timeout, func() { d.timedOut.Store(true) })
		defer timer.Stop()
	}

	err = d.lockNetwork()
	if err == nil {
		err = d.run()
	}
	if err == nil {
		err = d.closePageServer()
	}
	if err == nil && o.AfterImages != nil {
		err = o.AfterImages()
	}
	if err == nil {
		// A dump that would lose the tree does not finish: what restore
		// needs of its deleted objects is read back from the images first.
		err = d.files.Verify(d.dir)
	}
	if err != nil {
		d.cleanup()
		return nil, err
	}
	d.stats.FrozenTime = time.Since(frozenAt)
	d.stats.DroppedDatagrams, d.stats.DroppedBytes = d.files.DroppedDatagrams, d.files.DroppedBytes
	if err := d.writeStats(); err != nil {
		d.cleanup()
		return nil, err
	}
	if err := d.seal(0); err != nil {
		d.cleanup()
		return nil, err
	}
	if d.lazy != nil {
		return d.serveLazy()
	}
	return d.finish(), nil
}

// serveLazy serves the lazy pages of a complete dump; the tree dies when
// the destination has them all, and runs on as it was if it cannot get
// them.
func (d *dumper) serveLazy() (finishErr, err error) {
	if d.opts.LazyReady != nil {
		d.opts.LazyReady(d.lazyAddr())
	}
	_, err = d.lazy.serve()
	if d.lazy.killed {
		if err != nil {
			log.Warnf("every page was delivered and the tree killed, but: %v", err)
		}
		return d.lazy.finishErr, nil
	}
	if err == nil {
		err = errors.New("the session ended before the destination had every page")
	}
	d.cleanup()
	return nil, fmt.Errorf("dump --lazy-pages: %w: %w; the tree was let go, running as it was (the destination's lazy-pages daemon kills the tree it restored)", errLazyAborted, err)
}

// newDumper checks what can be checked before touching the tree (the
// tree as it runs: its fds, memory, locks, namespaces) and only then
// opens the images directory for a new set of images.
func newDumper(o Options, preDump bool) (*dumper, error) {
	if o.LSM == nil {
		o.LSM = lsm.Detect()
	}
	if o.Progress == nil {
		o.Progress = progress.Discard
	}
	if err := precheck(o.Pid); err != nil {
		return nil, err
	}
	checker := files.NewChecker(o.GhostLimit, treePids(o.Pid))
	checker.ExtUnixSk, checker.ShellJob = o.ExtUnixSk, o.ShellJob
	checker.FileLocks = o.FileLocks && !preDump
	checker.TCPEstablished, checker.TCPClose, checker.SkipInFlight = o.TCPEstablished, o.TCPClose, o.SkipInFlight
	if err := inspect(checker, preDump); err != nil {
		checker.Close()
		return nil, err
	}
	d := &dumper{opts: o, files: files.NewDumper(checker), stats: &Stats{}, fdTables: map[uint32]bool{}}
	if o.LazyPages && preDump {
		checker.Close()
		return nil, errors.New("pre-dump --lazy-pages: a pre-dump leaves the tree running; post-copy is the final dump's (dump --lazy-pages)")
	}
	if err := d.connectPageServer(); err != nil {
		checker.Close()
		return nil, err
	}
	if err := d.listenLazy(); err != nil {
		d.abortPageServer()
		checker.Close()
		return nil, err
	}
	dir, err := images.CreateDir(o.ImagesDir)
	if err == nil {
		err = dir.BeginWrite()
	}
	if err != nil {
		d.abortPageServer()
		checker.Close()
		return nil, err
	}
	d.dir = dir
	if d.ps != nil {
		removed, err := dir.PagesElsewhere()
		if err != nil {
			d.abortPageServer()
			checker.Close()
			return nil, err
		}
		if len(removed) > 0 {
			log.Infof("the pages go to the page server: removed the page images of an earlier dump in %s: %s", dir.Path(), strings.Join(removed, " "))
		}
	}
	d.files.PagesID = func() uint32 { d.pages++; return d.pages }
	d.files.OnRepair = func(pid, fd int, ino uint64, reuse bool) error { return d.watchdog.Repair(pid, fd, ino, reuse) }
	return d, nil
}

// startWatchdog starts the parasite watchdog, if asked for; Close on the
// nil watchdog does nothing.
func (d *dumper) startWatchdog() error {
	if len(d.opts.WatchdogArgs) == 0 {
		return nil
	}
	wd, err := parasite.StartWatchdog(d.opts.WatchdogArgs[0], d.opts.WatchdogArgs[1:]...)
	if err != nil {
		return err
	}
	d.watchdog = wd
	return nil
}

// precheck refuses, before touching anything, what can never be dumped.
func precheck(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("no PID given: use -t PID")
	}
	if pid == 1 {
		return fmt.Errorf("PID 1 cannot be dumped: it is the init process of this PID namespace and cannot be traced; dump one of its children, or run the tree in its own PID namespace")
	}
	st, err := proc.ReadStat(pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no process with PID %d: check the PID (ps -p %d)", pid, pid)
		}
		return fmt.Errorf("task %d: %w", pid, err)
	}
	if st.IsKernelThread() {
		return fmt.Errorf("PID %d (%s) is a kernel thread: kernel threads cannot be dumped; give the PID of a user process", pid, st.Comm)
	}
	if st.State == 'Z' {
		return fmt.Errorf("PID %d (%s) is a zombie: there is nothing left to dump; dump its parent, which holds it", pid, st.Comm)
	}
	// gockpt cannot freeze itself: refuse a tree that contains us.
	for p := os.Getpid(); p > 1; {
		if p == pid {
			return fmt.Errorf("PID %d is gockpt itself or one of its ancestors: run gockpt from outside the tree you dump (e.g. from another shell)", pid)
		}
		s, err := proc.ReadStat(p)
		if err != nil {
			break
		}
		p = s.PPid
	}
	return nil
}

// restoredNamespaces are the namespaces a restored task ends up in:
// gockpt's own, as restore does not recreate them. (UTS namespaces are
// dumped and recreated: see utsNamespace.)
var restoredNamespaces = []string{"pid", "net", "mnt", "ipc", "user", "time", "cgroup"}

// sameNamespaces refuses a task living in namespaces other than gockpt's:
// restore would bring it back in gockpt's own, silently different.
func sameNamespaces(c *files.Checker, pid int) error {
	for _, ns := range restoredNamespaces {
		mine, err1 := os.Readlink("/proc/self/ns/" + ns)
		theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err1 != nil || err2 != nil {
			continue // the kernel lacks this namespace type
		}
		if mine != theirs {
			return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Kind: support.Namespaces,
				Object: fmt.Sprintf("its own %s namespace %s (gockpt's is %s)", ns, theirs, mine),
				Advice: fmt.Sprintf("run gockpt inside that namespace (nsenter --target %d --%s) or dump a process that shares gockpt's", pid, nsenterFlag(ns))}
		}
	}
	return nil
}

func nsenterFlag(ns string) string {
	if ns == "mnt" {
		return "mount"
	}
	return ns
}

func seizeError(pid int, err error) error {
	var se *ptrace.SeizeError
	if errors.As(err, &se) {
		return err // names the task and why
	}
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("task %d exited while it was being frozen: %w", pid, err)
	}
	return err
}

// freeze seizes the tree, makes injected syscalls pass its seccomp filters
// and tells the watchdog every thread's state. On failure the tree runs on
// as before. It returns when the tree was frozen.
func (d *dumper) freeze(tracer *ptrace.Tracer) (time.Time, error) {
	// A thread sleeping in restart_syscall shows what it sleeps in only
	// until it is frozen (then it waits in the ptrace stop).
	for _, pid := range d.files.Checker.Tasks {
		ptrace.NoteSleeping(pid)
	}
	start := time.Now()
	tree, err := tracer.SeizeTree(d.opts.Pid)
	if err != nil {
		d.inc.abort()
		return time.Time{}, seizeError(d.opts.Pid, err)
	}
	d.tree = tree
	var pids []int
	for _, t := range tree.Tasks() {
		pids = append(pids, t.Pid)
	}
	d.files.Checker.SetTasks(pids)
	frozenAt := time.Now()
	d.stats.FreezingTime = frozenAt.Sub(start)
	log.Infof("seized %d tasks in %v", len(tree.Tasks()), d.stats.FreezingTime)
	if err := d.tree.SuspendSeccomp(); err != nil {
		d.cleanup()
		return time.Time{}, err
	}
	if err := d.registerThreads(); err != nil {
		d.cleanup()
		return time.Time{}, err
	}
	return frozenAt, nil
}

// registerThreads tells the watchdog each thread's state as seized, before
// any syscall is injected into it: if gockpt dies during an injected
// syscall, the thread parks and the watchdog puts this state back.
func (d *dumper) registerThreads() error {
	if d.watchdog == nil {
		return nil
	}
	for _, t := range d.tree.Tasks() {
		for _, te := range t.Threads {
			regs, err := te.GetRegs()
			if err != nil {
				return err
			}
			mask, err := te.GetSigmask()
			if err != nil {
				return err
			}
			x, err := te.GetXstate()
			if err != nil {
				return err
			}
			if err := d.watchdog.Thread(t.Pid, te.Tid, regs, mask, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish ends a successful dump as asked: kill the tree (default), leave it
// running, or leave it stopped.
func (d *dumper) finish() error {
	switch {
	case d.opts.LeaveStopped:
		err := d.unlockNetwork()
		if derr := d.detachAll(true); derr != nil {
			err = derr
		}
		return err
	case d.opts.LeaveRunning:
		err := d.unlockNetwork()
		if derr := d.detachAll(false); derr != nil {
			err = derr
		}
		return err
	}
	// The connections go back into repair mode, to close without a word
	// to their peers when gockpt lets go of its copies; the network lock
	// stays until restore lifts it.
	// The threads are parked first: should gockpt die before the kill,
	// none runs with a socket in repair mode before the watchdog took it
	// out again.
	if d.files.TCPDumped() > 0 {
		if _, err := d.parkAll(); err != nil {
			log.Errorf("before the kill: %v", err)
		}
	}
	if err := d.files.EnterRepair(); err != nil {
		log.Errorf("before the kill: %v (the peers of these connections may see them reset)", err)
	}
	// SIGKILL first, while everything is still stopped under ptrace, so no
	// task runs another instruction after its state was saved.
	for _, t := range d.tree.Tasks() {
		if !t.Zombie {
			unix.Kill(t.Pid, unix.SIGKILL)
		}
	}
	d.watchdog.KeepNetwork()
	// gockpt's copies of the connections go now, so that once the tasks
	// are dead (waited for below) their sockets are too, and a restore
	// started right after finds the connections free.
	d.files.CloseRepaired()
	d.tree.Detach()
	// Return once they are dead, so that a restore started right after
	// finds them gone (or zombies for their parents to reap), not dying.
	deadline := time.Now().Add(5 * time.Second)
	for _, t := range d.tree.Tasks() {
		for time.Now().Before(deadline) {
			st, err := proc.ReadStat(t.Pid)
			if err != nil || st.State == 'Z' || st.State == 'X' {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	return nil
}

func (d *dumper) detachAll(stopped bool) error {
	var first error
	for _, t := range d.tree.Tasks() {
		for _, te := range t.Threads {
			var err error
			if stopped {
				err = te.DetachStopped()
			} else {
				err = te.Detach()
			}
			if err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// cleanup undoes everything after a failed dump: parasites cured, threads
// detached, the tree runs on as before.
func (d *dumper) cleanup() {
	for _, c := range d.cures {
		if err := c(); err != nil {
			log.Errorf("cure after failed dump: %v", err)
		}
	}
	d.cures = nil
	d.abortPageServer()
	d.unlockNetwork()
	d.files.RemoveLinks()
	if err := d.detachAll(false); err != nil {
		log.Errorf("detach after failed dump: %v", err)
	}
	d.inc.abort()
}
