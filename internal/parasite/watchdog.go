package parasite

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
//	map PID ADDR LEN INODE    a parasite mapping exists in task PID
//	unmap PID                 it is gone (cured normally)
//	bye                       gockpt is done: nothing to clean
//
// EOF without "bye" means gockpt died. A nil *Watchdog does nothing.
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

// Mapped registers a parasite mapping of task pid.
func (wd *Watchdog) Mapped(pid int, addr, length uint64) error {
	if wd == nil {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, addr, addr+length), &st); err != nil {
		return fmt.Errorf("task %d: parasite mapping: %w", pid, err)
	}
	return wd.send(fmt.Sprintf("map %d %d %d %d", pid, addr, length, st.Ino))
}

// Unmapped says the mapping of task pid is gone.
func (wd *Watchdog) Unmapped(pid int) { wd.send(fmt.Sprintf("unmap %d", pid)) }

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
	addr, length, ino uint64
}

// ServeWatchdog is the watchdog process's main: it reads events from r until
// EOF and then, unless gockpt said bye, removes every parasite mapping still
// registered. It returns what it did, for the log.
func ServeWatchdog(r io.Reader) (string, error) {
	areas := map[int]leftover{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "bye":
			return "", nil
		case f[0] == "map" && len(f) == 5:
			pid, _ := strconv.Atoi(f[1])
			a, _ := strconv.ParseUint(f[2], 10, 64)
			l, _ := strconv.ParseUint(f[3], 10, 64)
			ino, _ := strconv.ParseUint(f[4], 10, 64)
			areas[pid] = leftover{a, l, ino}
		case f[0] == "unmap" && len(f) == 2:
			pid, _ := strconv.Atoi(f[1])
			delete(areas, pid)
		default:
			return "", fmt.Errorf("watchdog: bad line %q", sc.Text())
		}
	}
	var done []string
	var errs []error
	for pid, a := range areas {
		if err := cleanLeftover(pid, a); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, fmt.Sprintf("task %d: removed parasite leftovers at %#x", pid, a.addr))
		}
	}
	return strings.Join(done, "\n"), errors.Join(errs...)
}

// cleanLeftover waits for the self-cured task to be out of the blob, then
// unmaps, from inside it, the VMAs of the area that are still the parasite's
// own mapping (same shmem inode): nothing the task mapped since is touched.
func cleanLeftover(pid int, a leftover) error {
	tr := ptrace.NewTracer()
	defer tr.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		te, err := tr.Seize(pid)
		if err != nil {
			return fmt.Errorf("task %d: %w", pid, err)
		}
		regs, err := te.GetRegs()
		if err != nil {
			te.Detach()
			return err
		}
		if regs.Rip >= a.addr && regs.Rip < a.addr+a.length {
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

func unmapLeftovers(te *ptrace.Tracee, pid int, a leftover) error {
	vmas, err := proc.ReadMaps(pid)
	if err != nil {
		return err
	}
	for _, v := range vmas {
		if v.Start < a.addr || v.End > a.addr+a.length || v.Inode != a.ino {
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
