package parasite

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/netlock"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// Watchdog is a helper process that outlives a killed gockpt. A blob whose
// gockpt died cures its task by itself, but it cannot unmap the page it runs
// from nor the frame it returns through; the watchdog, told of every
// parasite mapping, removes what is left once gockpt is gone without
// saying so.
//
// gockpt talks to it over its stdin, one line per event:
//
//	thread PID TID STATE      a seized thread's own state (registers,
//	                          signal mask, xsave area; base64), sent before
//	                          any syscall is injected into it
//	map PID ADDR LEN          a parasite area is about to be mapped at ADDR
//	unmap PID                 it is gone (cured normally)
//	netlock TABLE             the network lock (nftables table TABLE) is
//	                          about to be taken
//	repair PID FD INO REUSE   the task's socket is about to be put in TCP
//	                          repair mode (REUSE: its SO_REUSEADDR)
//	keepnet                   the lock and the sockets stay as they are
//	                          (the tree is being killed after a dump)
//	bye                       gockpt is done: nothing to clean
//
// EOF without "bye" means gockpt died. Then the network lock is lifted and
// the sockets leave repair mode (unless keepnet came), a thread found parked in the
// parking code of injected syscalls (see ptrace) gets its state back, and
// parasite leftovers are removed. A nil *Watchdog does nothing.
type Watchdog struct {
	mu  sync.Mutex
	cmd *exec.Cmd
	w   io.WriteCloser
}

// StartWatchdog starts exe (gockpt) with args, which must run ServeWatchdog.
// The watchdog gets its own session, so that a signal to gockpt's process
// group does not take it along.
func StartWatchdog(exe string, args ...string) (*Watchdog, error) {
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// What it did (or failed to do) is for the user who killed gockpt.
	cmd.Stderr = os.Stderr
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the parasite watchdog %s: %w", exe, err)
	}
	return &Watchdog{cmd: cmd, w: w}, nil
}

func (wd *Watchdog) send(line string) error {
	if wd == nil {
		return nil
	}
	wd.mu.Lock()
	defer wd.mu.Unlock()
	if _, err := io.WriteString(wd.w, line+"\n"); err != nil {
		return fmt.Errorf("parasite watchdog: %w", err)
	}
	return nil
}

// Thread registers the state of a seized thread, so that the watchdog can
// put it back if gockpt dies while a syscall is injected into the thread.
func (wd *Watchdog) Thread(pid, tid int, regs ptrace.Regs, sigmask uint64, xstate []byte) error {
	if wd == nil {
		return nil
	}
	return wd.send(fmt.Sprintf("thread %d %d %s", pid, tid, base64.StdEncoding.EncodeToString(encodeThreadState(regs, sigmask, xstate))))
}

// Mapping registers a parasite area about to be mapped at addr: if gockpt
// dies, the watchdog removes the parasite's own mappings found inside it
// (shared anonymous memory, the parasite memfd), nothing else.
func (wd *Watchdog) Mapping(pid int, addr, length uint64) error {
	if wd == nil {
		return nil
	}
	return wd.send(fmt.Sprintf("map %d %d %d", pid, addr, length))
}

// Unmapped says the mapping of task pid is gone.
func (wd *Watchdog) Unmapped(pid int) { wd.send(fmt.Sprintf("unmap %d", pid)) }

// TempFd registers an fd gockpt made inside task pid (an injected
// userfaultfd, copied out and closed at once): if gockpt dies before
// FdClosed, the watchdog closes it in the task, provided fd is still the
// same file (inode ino).
func (wd *Watchdog) TempFd(pid, fd int, ino uint64) error {
	if wd == nil {
		return nil
	}
	return wd.send(fmt.Sprintf("fd %d %d %d", pid, fd, ino))
}

// UffdPending says a userfaultfd is about to be made inside task pid,
// which holds none: if gockpt dies before TempFd tells which fd it is
// (during the injected syscall, say), the watchdog closes every
// userfaultfd the task holds.
func (wd *Watchdog) UffdPending(pid int) error {
	if wd == nil {
		return nil
	}
	return wd.send(fmt.Sprintf("uffd %d", pid))
}

// FdClosed says the fd registered with TempFd (or UffdPending) is closed.
func (wd *Watchdog) FdClosed(pid int) { wd.send(fmt.Sprintf("nofd %d", pid)) }

// NetLock registers the nftables table of a network lock about to be
// taken: if gockpt dies, the watchdog deletes it.
func (wd *Watchdog) NetLock(table string) error {
	if wd == nil {
		return nil
	}
	return wd.send("netlock " + table)
}

// Repair registers a socket of task pid (fd, inode ino) about to be put
// in TCP repair mode: if gockpt dies, the watchdog takes it out again
// and sets SO_REUSEADDR back when reuse.
func (wd *Watchdog) Repair(pid, fd int, ino uint64, reuse bool) error {
	if wd == nil {
		return nil
	}
	r := 0
	if reuse {
		r = 1
	}
	return wd.send(fmt.Sprintf("repair %d %d %d %d", pid, fd, ino, r))
}

// KeepNetwork says the lock and the sockets in repair mode are to stay:
// the dumped tree is being killed, and restore lifts the lock.
func (wd *Watchdog) KeepNetwork() { wd.send("keepnet") }

// Close tells the watchdog that all is well and waits for it to exit.
func (wd *Watchdog) Close() error {
	if wd == nil {
		return nil
	}
	wd.send("bye")
	wd.w.Close()
	return wd.cmd.Wait()
}

type leftover struct {
	addr, length uint64
}

// ServeWatchdog is the watchdog process's main: it reads events from r until
// EOF and then, unless gockpt said bye, removes every parasite mapping still
// registered. It returns what it did, for the log.
func ServeWatchdog(r io.Reader) (string, error) {
	areas := map[int]leftover{}
	fds := map[int][2]uint64{} // pid: fd, inode
	pendingUffd := map[int]bool{}
	var threads []threadState
	var lockTable string
	var repairs [][4]uint64 // pid, fd, inode, reuse
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "bye":
			return "", nil
		case f[0] == "map" && len(f) == 4:
			pid, _ := strconv.Atoi(f[1])
			a, _ := strconv.ParseUint(f[2], 10, 64)
			l, _ := strconv.ParseUint(f[3], 10, 64)
			areas[pid] = leftover{a, l}
		case f[0] == "thread" && len(f) == 4:
			pid, _ := strconv.Atoi(f[1])
			tid, _ := strconv.Atoi(f[2])
			b, err := base64.StdEncoding.DecodeString(f[3])
			if err != nil {
				return "", fmt.Errorf("watchdog: thread %d state: %w", tid, err)
			}
			st, err := decodeThreadState(pid, tid, b)
			if err != nil {
				return "", err
			}
			threads = append(threads, st)
		case f[0] == "unmap" && len(f) == 2:
			pid, _ := strconv.Atoi(f[1])
			delete(areas, pid)
		case f[0] == "fd" && len(f) == 4:
			pid, _ := strconv.Atoi(f[1])
			fd, _ := strconv.ParseUint(f[2], 10, 32)
			ino, _ := strconv.ParseUint(f[3], 10, 64)
			fds[pid] = [2]uint64{fd, ino}
		case f[0] == "netlock" && len(f) == 2:
			lockTable = f[1]
		case f[0] == "repair" && len(f) == 5:
			var v [4]uint64
			for i := range v {
				v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
			}
			repairs = append(repairs, v)
		case f[0] == "keepnet" && len(f) == 1:
			lockTable, repairs = "", nil
		case f[0] == "uffd" && len(f) == 2:
			pid, _ := strconv.Atoi(f[1])
			pendingUffd[pid] = true
		case f[0] == "nofd" && len(f) == 2:
			pid, _ := strconv.Atoi(f[1])
			delete(fds, pid)
			delete(pendingUffd, pid)
		default:
			return "", fmt.Errorf("watchdog: bad line %q", sc.Text())
		}
	}
	var done []string
	var errs []error
	// The connections first: the lock goes, then repair mode, whose
	// window probe then reaches the peer.
	if lockTable != "" {
		if err := netlock.Unlock(strings.TrimPrefix(lockTable, netlock.TablePrefix)); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "lifted the network lock (nftables table inet "+lockTable+")")
		}
	}
	for _, r := range repairs {
		if err := endRepair(int(r[0]), int(r[1]), r[2], r[3] != 0); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, fmt.Sprintf("task %d fd %d: the TCP connection left repair mode", r[0], r[1]))
		}
	}
	// Fds next, while a thread that died in the middle of an injected
	// syscall is still parked and cannot make files of its own.
	for pid, fi := range fds {
		delete(pendingUffd, pid)
		if err := closeLeftoverFd(pid, func(fd int, st *unix.Stat_t, _ string) bool { return fd == int(fi[0]) && st.Ino == fi[1] }); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, fmt.Sprintf("task %d: closed gockpt's fd %d", pid, fi[0]))
		}
	}
	for pid := range pendingUffd {
		if err := closeLeftoverFd(pid, func(_ int, _ *unix.Stat_t, link string) bool { return link == "anon_inode:[userfaultfd]" }); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, fmt.Sprintf("task %d: closed the userfaultfd gockpt was making", pid))
		}
	}
	// Then threads: a parked thread holds nothing but its own state, and a
	// parasite leftover can only be removed from a task that runs its code.
	for _, st := range threads {
		fixed, err := unpark(st)
		if err != nil {
			errs = append(errs, err)
		} else if fixed {
			done = append(done, fmt.Sprintf("task %d thread %d: put back from the parking code", st.pid, st.tid))
		}
	}
	for pid, a := range areas {
		if err := cleanLeftover(pid, a); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, fmt.Sprintf("task %d: removed parasite leftovers at %#x", pid, a.addr))
		}
	}
	return strings.Join(done, "\n"), errors.Join(errs...)
}

// endRepair takes task pid's socket fd (inode ino) out of TCP repair mode,
// with a window probe, and sets SO_REUSEADDR again (repair mode clears
// it). A task or socket gone is nothing to do.
func endRepair(pid, fd int, ino uint64, reuse bool) error {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(pfd)
	s, err := unix.PidfdGetfd(pfd, fd, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(s)
	var st unix.Stat_t
	if unix.Fstat(s, &st) != nil || st.Ino != ino {
		return nil
	}
	if v, err := unix.GetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR); err == nil && v == 0 {
		return nil
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_REPAIR, 0); err != nil {
		return fmt.Errorf("task %d fd %d: leave TCP repair mode: %w", pid, fd, err)
	}
	if reuse {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("task %d fd %d: SO_REUSEADDR: %w", pid, fd, err)
		}
	}
	return nil
}

// cleanLeftover waits for the self-cured task to be out of the blob, then
// unmaps, from inside it, the VMAs of the area that are still the
// parasite's own (shared anonymous memory, the parasite memfd): nothing the
// task mapped since is touched.
func cleanLeftover(pid int, a leftover) error {
	tr := ptrace.NewTracer()
	defer tr.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		te, err := seizeWhenFree(tr, pid)
		if err != nil {
			return fmt.Errorf("task %d: %w", pid, err)
		}
		regs, err := te.GetRegs()
		if err != nil {
			te.Detach()
			return err
		}
		if pc := ptrace.PC(&regs); pc >= a.addr && pc < a.addr+a.length {
			// Still inside the blob, finishing its cure: let it run.
			te.Detach()
			if time.Now().After(deadline) {
				return fmt.Errorf("task %d: still in the parasite after 10 s", pid)
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		err = unmapLeftovers(te, pid, a)
		if derr := te.Detach(); err == nil {
			err = derr
		}
		return err
	}
}

// closeLeftoverFd closes, from inside the task, the fds gockpt made there
// that ours picks out (by number, inode, or /proc link).
func closeLeftoverFd(pid int, ours func(fd int, st *unix.Stat_t, link string) bool) error {
	find := func() []int {
		var out []int
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range ents {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			path := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
			var st unix.Stat_t
			link, err := os.Readlink(path)
			if err != nil || unix.Stat(path, &st) != nil {
				continue
			}
			if ours(fd, &st, link) {
				out = append(out, fd)
			}
		}
		return out
	}
	if len(find()) == 0 {
		return nil // closed already
	}
	tr := ptrace.NewTracer()
	defer tr.Close()
	te, err := seizeWhenFree(tr, pid)
	if err != nil {
		return fmt.Errorf("task %d: %w", pid, err)
	}
	defer te.Detach()
	for _, fd := range find() { // again, now that the task is stopped
		r, err := te.Syscall(unix.SYS_CLOSE, uint64(fd))
		if err != nil {
			return err
		}
		if e := ptrace.Errno(r); e != 0 {
			return fmt.Errorf("task %d: close %d: %w", pid, fd, e)
		}
	}
	return nil
}

func unmapLeftovers(te *ptrace.Tracee, pid int, a leftover) error {
	vmas, err := proc.ReadMaps(pid)
	if err != nil {
		return err
	}
	for _, v := range vmas {
		if v.Start < a.addr || v.End > a.addr+a.length {
			continue
		}
		if !v.Shared() || v.Path != "/dev/zero" && v.Path != "/memfd:"+parasiteMemfd {
			continue
		}
		r, err := te.Syscall(unix.SYS_MUNMAP, v.Start, v.End-v.Start)
		if err != nil {
			return err
		}
		if e := ptrace.Errno(r); e != 0 {
			return fmt.Errorf("task %d: munmap %#x-%#x: %w", pid, v.Start, v.End, e)
		}
	}
	return nil
}

// threadState is what the watchdog keeps of a seized thread.
type threadState struct {
	pid, tid int
	regs     ptrace.Regs
	sigmask  uint64
	xstate   []byte
}

const regsSize = int(unsafeSizeofRegs)

func encodeThreadState(regs ptrace.Regs, sigmask uint64, xstate []byte) []byte {
	b := make([]byte, 0, regsSize+8+len(xstate))
	b = append(b, regsBytes(&regs)...)
	b = le.AppendUint64(b, sigmask)
	return append(b, xstate...)
}

func decodeThreadState(pid, tid int, b []byte) (threadState, error) {
	if len(b) < regsSize+8 {
		return threadState{}, fmt.Errorf("watchdog: thread %d state is %d bytes", tid, len(b))
	}
	st := threadState{pid: pid, tid: tid, sigmask: le.Uint64(b[regsSize:]), xstate: b[regsSize+8:]}
	st.regs = regsFromBytes(b[:regsSize])
	return st, nil
}

// unpark gives a thread its state back if it sits in the parking code: it
// was running an injected syscall when gockpt died.
func unpark(st threadState) (bool, error) {
	addr, ok, err := ptrace.ParkingAddr(st.pid)
	if err != nil || !ok {
		return false, nil // no parking code: nothing was injected
	}
	tr := ptrace.NewTracer()
	defer tr.Close()
	te, err := seizeWhenFree(tr, st.tid)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return false, nil // gone
		}
		return false, err
	}
	defer te.Detach()
	regs, err := te.GetRegs()
	if err != nil {
		return false, err
	}
	if pc := ptrace.PC(&regs); pc < addr || pc >= addr+ptrace.ParkingCodeLen {
		return false, nil
	}
	if len(st.xstate) > 0 {
		if err := te.SetXstate(st.xstate); err != nil {
			return false, err
		}
	}
	if err := te.SetSigmask(st.sigmask); err != nil {
		return false, err
	}
	// The thread's own syscall, interrupted when it was seized, restarts
	// as it would have (the saved registers say how).
	if err := te.SetRegs(&st.regs); err != nil {
		return false, err
	}
	return true, nil
}

// seizeWhenFree seizes tid once the dead gockpt's ptrace attachment is gone:
// a dying process closes its files (our EOF) before the kernel lets its
// tracees go, so the first tries can meet EPERM.
func seizeWhenFree(tr *ptrace.Tracer, tid int) (*ptrace.Tracee, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		te, err := tr.Seize(tid)
		if err == nil || !errors.Is(err, unix.EPERM) || time.Now().After(deadline) {
			return te, err
		}
		time.Sleep(2 * time.Millisecond)
	}
}
