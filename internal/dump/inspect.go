package dump

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/par"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
)

// inspect looks at the whole tree from outside, before anything touches
// it, and refuses what restore could not bring back exactly: fds gockpt does
// not dump, file locks and leases, memory it cannot keep, terminals,
// namespaces. The same checks run again on each task while the tree is
// frozen, since it may change in between; a refusal then also leaves it
// running as it was, but this pass makes the common case cost nothing.
// memoryOnly is a pre-dump's check: it saves memory alone, and as with
// CRIU the options that allow other objects are given to the final dump.
//
// Only refusals come out of it: the tree runs while it is looked at, so a
// task that exits or execs under the look makes /proc answer in ways that
// mean nothing (a mapped file gone, an fd closed); the frozen pass sees the
// tree still, and fails on whatever is real.
func inspect(c *files.Checker, memoryOnly bool) error {
	// What a task holds by itself is read for several tasks at once; its
	// fds (c.Task, which remembers what it saw) one task after another.
	// The refusals reported are the first refused task's in tree order.
	errs := make([]error, len(c.Tasks))
	zombie := make([]bool, len(c.Tasks))
	par.Each(len(c.Tasks), runtime.GOMAXPROCS(0), func(i int) {
		zombie[i], errs[i] = inspectOwn(c, c.Tasks[i], memoryOnly)
	})
	for i, pid := range c.Tasks {
		err := errs[i]
		if (err == nil || files.IsRefusal(err)) && !memoryOnly && !zombie[i] {
			// The task's fds are refused along with the task itself.
			if ferr := c.Task(pid); files.IsRefusal(ferr) || err == nil {
				err = files.JoinRefusals(err, ferr)
			}
		}
		if err != nil {
			if files.IsRefusal(err) {
				return err
			}
			log.Debugf("inspection of task %d before the freeze: %v (the frozen pass looks again)", pid, err)
		}
	}
	if memoryOnly {
		return nil
	}
	if err := checkSharedFdTables(c); err != nil {
		return err
	}
	return checkLocks(c)
}

// inspectOwn checks what one task of the tree holds by itself (not its
// fds); zombies hold nothing.
func inspectOwn(c *files.Checker, pid int, memoryOnly bool) (zombie bool, err error) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return false, fmt.Errorf("task %d: %w", pid, err)
	}
	if st.State == 'Z' {
		return true, nil
	}
	if !memoryOnly {
		if err := taskRefusals(c, pid, st, false); err != nil {
			return false, err
		}
	}
	areas, err := proc.ReadSmaps(pid)
	if err != nil {
		return false, fmt.Errorf("task %d: %w", pid, err)
	}
	for i := range areas {
		if err := vmaRefusal(c, pid, &areas[i]); err != nil {
			return false, err
		}
	}
	return false, nil
}

// taskRefusals refuses what a task itself holds: a controlling terminal,
// namespaces restore would not recreate, settings CRIU's images have no
// field for.
func taskRefusals(c *files.Checker, pid int, st *proc.Stat, frozen bool) error {
	if err := sameNamespaces(c, pid); err != nil {
		return err
	}
	if err := settingRefusals(c, pid, frozen); err != nil {
		return err
	}
	// A group of a session the tree leads can only be made again by its
	// leader: without one in the tree, restore could not recreate it.
	if c.InTree != nil && c.InTree(st.Session) && !c.InTree(st.Pgrp) {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Kind: support.LeaderlessGroups,
			Object: fmt.Sprintf("process group %d, whose leader (PID %d) is no longer in the tree", st.Pgrp, st.Pgrp)}
	}
	if st.TTYNr != 0 {
		r := &support.Refusal{Pid: pid, Comm: c.Comm(pid), Kind: support.Terminals,
			Object: fmt.Sprintf("controlling terminal %s", ttyName(int(st.TTYNr)))}
		switch {
		case c.InTree(st.Session) && c.PtyInTree(uint64(st.TTYNr)):
			// A pseudo-terminal pair of the tree.
		case c.InTree(st.Session):
			r.Detail = fmt.Sprintf("the terminal of session %d, which the tree leads, and its master is not in the tree", st.Session)
			r.Advice = "dump the tree that holds the terminal's master too"
			return r
		case !c.ShellJob:
			r.Detail = "attached to shell terminal: use --shell-job"
			r.Advice = "dump with --shell-job, and restore with --shell-job on a terminal; or start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)"
			return r
		}
	}
	// A deleted working directory or root is kept as a ghost directory,
	// as CRIU keeps it; a deleted executable is not.
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return fmt.Errorf("task %d: exe: %w", pid, err)
	}
	if strings.HasSuffix(p, " (deleted)") {
		return &support.Refusal{Pid: pid, Comm: c.Comm(pid), Kind: support.DeletedPaths,
			Object: fmt.Sprintf("its %s %s", pathWords["exe"], p)}
	}
	return nil
}

var pathWords = map[string]string{"exe": "executable", "cwd": "working directory", "root": "root directory"}

// ttyName names a terminal by its device number as ps does: pts/3, tty1.
func ttyName(nr int) string {
	maj, min := (nr>>8)&0xfff, (nr&0xff)|((nr>>12)&0xfff00)
	switch {
	case maj >= 136 && maj <= 143:
		return fmt.Sprintf("/dev/pts/%d", (maj-136)*256+min)
	case maj == 4 && min < 64:
		return fmt.Sprintf("/dev/tty%d", min)
	case maj == 4:
		return fmt.Sprintf("/dev/ttyS%d", min-64)
	case maj == 5 && min == 1:
		return "/dev/console"
	}
	return fmt.Sprintf("device %d:%d", maj, min)
}

// vmaRefusal refuses a memory area restore could not bring back: it is
// the one place that decides, for the check before the freeze and for
// collectVMAs while frozen.
func vmaRefusal(c *files.Checker, pid int, a *proc.SmapsVMA) error {
	switch a.Kind {
	case proc.KindVDSO, proc.KindVVAR, proc.KindVVARVClock, proc.KindVSyscall:
		return nil // the running kernel's own, sealed or not
	}
	r := &support.Refusal{Pid: pid, Comm: c.Comm(pid), Where: fmt.Sprintf("VMA %#x-%#x", a.Start, a.End), Object: a.Path}
	switch {
	case a.Kind == proc.KindUprobes:
		r.Kind, r.Object = support.Uprobes, "[uprobes]"
	case a.Flags.Sealed() || a.Flags.ShadowStack() || a.Flags.Droppable():
		r.Kind, r.Object = support.SpecialMaps, specialMapWord(a)
	case anonHugetlb(a):
		return nil // private anonymous memory in huge pages
	case a.Flags.HugeTLB():
		r.Kind = support.Hugetlb
		if a.Path == "/anon_hugepage" {
			r.Object = "shared anonymous hugetlb memory"
		}
	case a.Kind == proc.KindAnonShmemNamed:
		r.Kind, r.Object = support.SharedAnonNamed, a.Path
	case a.Kind != proc.KindFile && a.Shared():
		r.Kind, r.Object = support.SharedAnonNamed, "shared anonymous memory "+a.Path
	case a.Kind != proc.KindFile:
		return nil
	case a.Flags.IO() || a.Flags.PFNMap():
		r.Kind = support.DeviceMaps
	case aioRing(a):
		return nil // restored as CRIU does; its layout is checked while frozen (aioRingEntry)
	case a.Major == 0 && a.Minor == 1 && strings.HasPrefix(a.Path, "/SYSV") && a.Deleted:
		r.Kind = support.SysVShm
		r.Object = fmt.Sprintf("System V shared memory segment (key 0x%s, shmid %d)", strings.TrimPrefix(a.Path, "/SYSV"), a.Inode)
	case memfdArea(a):
		return nil // the memfd is kept, its inode once
	case sharedAnonArea(a):
		return nil // one shmem object, however many tasks map it
	case !a.Deleted:
		return nil
	default:
		// Unlinked (maps says so for any file whose name is gone, other
		// hard links or not): kept as a ghost, or through a new link when
		// another one names it, within the ghost limit.
		var st unix.Stat_t
		mapFile := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, a.Start, a.End)
		err := lsm.WithoutAuditedCheckpointRestore(func() error { return unix.Stat(mapFile, &st) })
		if err == nil && st.Nlink == 0 && st.Mode&unix.S_IFMT == unix.S_IFREG && files.GhostBytes(&st) > c.GhostLimit {
			return &files.GhostLimitError{Where: fmt.Sprintf("task %d (%s) VMA %#x-%#x", pid, c.Comm(pid), a.Start, a.End),
				Name: a.Path, Size: files.GhostBytes(&st), Limit: c.GhostLimit, Mapped: true}
		}
		return nil
	}
	return r
}

// memfdArea tells a mapping of a memfd (not of huge pages, refused
// before as hugetlb).
func memfdArea(a *proc.SmapsVMA) bool {
	return a.Kind == proc.KindFile && a.Major == 0 && a.Minor == 1 && strings.HasPrefix(a.Path, "/memfd:") && a.Deleted && !a.Flags.HugeTLB()
}

// anonHugetlb reports private anonymous memory in huge pages
// (MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB): hugetlbfs shows it as the
// deleted file /anon_hugepage.
func anonHugetlb(a *proc.SmapsVMA) bool {
	return a.Flags.HugeTLB() && a.Kind == proc.KindFile && a.Path == "/anon_hugepage" && a.Deleted && !a.Shared()
}

func specialMapWord(a *proc.SmapsVMA) string {
	switch {
	case a.Flags.Sealed():
		return "sealed mapping (mseal) " + a.Path
	case a.Flags.ShadowStack():
		return "shadow stack"
	}
	return "droppable mapping (MAP_DROPPABLE)"
}

// findFd finds the first fd of task pid whose link text and file match.
func findFd(pid int, match func(target string, st *unix.Stat_t) bool) (int, string, bool) {
	fds, err := files.ListFds(pid)
	if err != nil {
		return 0, "", false
	}
	for _, fd := range fds {
		link := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
		t, err := os.Readlink(link)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(link, &st) == nil && match(t, &st) {
			return fd, t, true
		}
	}
	return 0, "", false
}

// checkLocks refuses a lock /proc/locks shows for a task of the tree that
// no fd's fdinfo showed: a POSIX lock is the task's (its fd table's), and
// must have an fd on the file, but the fdinfo pass could have raced with a
// lock taken since. OFD locks carry no PID here and were seen per fd.
//
// With --file-locks, locks are kept, and the frozen tree is checked
// instead (unseenLocks).
func checkLocks(c *files.Checker) error {
	if c.FileLocks {
		return nil
	}
	return refuseLocks(c, func(proc.Lock) bool { return true })
}

// unseenLocks refuses, once every task is dumped, a POSIX lock that
// /proc/locks shows for a task of the tree and no fd of the tree showed
// (one held by an fd table the tree's tasks no longer use): dump would
// lose it.
func unseenLocks(c *files.Checker, fd *files.Dumper) error {
	err := refuseLocks(c, func(l proc.Lock) bool { return l.Class == "POSIX" && !fd.SeenLock(l) })
	var r *support.Refusal
	if errors.As(err, &r) {
		return fmt.Errorf("task %d (%s): %s: %s held by an fd table no task of the tree uses, which dump cannot keep; release the lock before dumping", r.Pid, r.Comm, r.Object, r.Detail)
	}
	return err
}

// refuseLocks refuses the first lock (not a waiter) of a task of the
// tree in /proc/locks that refused says to refuse.
func refuseLocks(c *files.Checker, refused func(proc.Lock) bool) error {
	locks, err := proc.ReadLocks()
	if err != nil {
		return nil // no /proc/locks (CONFIG_FILE_LOCKING off): no locks
	}
	for _, l := range locks {
		if l.Waiter || l.Pid <= 0 || !c.InTree(l.Pid) || !refused(l) {
			continue
		}
		r := &support.Refusal{Pid: l.Pid, Comm: c.Comm(l.Pid), Kind: support.FileLocks, Detail: l.Describe(),
			Object: fmt.Sprintf("file %s inode %d", l.Dev, l.Ino)}
		if l.IsLease() {
			r.Kind = support.Leases
		}
		// /proc/locks names the file by device ("00:1f", hexadecimal) and inode.
		onFile := func(_ string, st *unix.Stat_t) bool {
			return st.Ino == l.Ino && fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev)) == l.Dev
		}
		if fd, path, ok := findFd(l.Pid, onFile); ok {
			r.Where, r.Object = "fd "+strconv.Itoa(fd), path
		}
		return r
	}
	return nil
}

// treePids lists the tree rooted at root as /proc shows it now, parents
// before children; the tree runs, so it may differ from what the freeze
// finds a moment later.
func treePids(root int) []int {
	out := []int{root}
	seen := map[int]bool{root: true}
	for i := 0; i < len(out); i++ {
		pid := out[i]
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue
		}
		for _, e := range ents {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, e.Name()))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil && !seen[c] {
					seen[c] = true
					out = append(out, c)
				}
			}
		}
	}
	return out
}
