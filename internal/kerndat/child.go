package kerndat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// helper is a `sleep 1000` child a probe works on.
type helper struct {
	cmd *exec.Cmd
	Pid int
	tr  *ptrace.Tracer
	te  *ptrace.Tracee
}

// sleepPath is the helper program; glibc's sleep registers an rseq area.
func sleepPath() string {
	if p, err := exec.LookPath("sleep"); err == nil {
		return p
	}
	return "/bin/sleep"
}

// startHelper starts `sleep 1000` with extra files as fds 3, 4, ... and waits
// until it sleeps in clock_nanosleep, so its libc start-up (rseq
// registration included) is done. The caller must call stop.
func startHelper(extra ...*os.File) (*helper, error) {
	cmd := exec.Command(sleepPath(), "1000")
	cmd.ExtraFiles = extra
	// If gockpt dies mid-probe the helper goes with it. The death signal
	// fires when the forking *thread* exits, and tracer threads exit when
	// closed, so helpers are forked from one thread that never exits.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := onSpawnThread(cmd.Start); err != nil {
		return nil, fmt.Errorf("start helper process %s: %w", cmd.Path, err)
	}
	h := &helper{cmd: cmd, Pid: cmd.Process.Pid}
	if err := h.waitSleeping(); err != nil {
		h.stop()
		return nil, err
	}
	return h, nil
}

var spawnThread = sync.OnceValue(func() chan func() {
	reqs := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as gockpt
		for f := range reqs {
			f()
		}
	}()
	return reqs
})

// onSpawnThread runs f on the spawn thread.
func onSpawnThread(f func() error) error {
	var err error
	done := make(chan struct{})
	spawnThread() <- func() { err = f(); close(done) }
	<-done
	return err
}

// waitSleeping polls /proc/PID/syscall until the helper is blocked in
// nanosleep or clock_nanosleep.
func (h *helper) waitSleeping() error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", h.Pid))
		if errors.Is(err, os.ErrNotExist) {
			// No /proc/PID/syscall in this kernel: settle for "sleeping".
			if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", h.Pid)); err == nil {
				if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'S' {
					return nil
				}
			}
		}
		if err != nil {
			return fmt.Errorf("helper process %d: %w", h.Pid, err)
		}
		nr, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		if nr == strconv.Itoa(unix.SYS_CLOCK_NANOSLEEP) || nr == strconv.Itoa(unix.SYS_NANOSLEEP) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("helper process %d never went to sleep (/proc/%d/syscall: %q)", h.Pid, h.Pid, strings.TrimSpace(string(b)))
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// startSeized starts a helper and seizes it.
func startSeized(extra ...*os.File) (*helper, error) {
	h, err := startHelper(extra...)
	if err != nil {
		return nil, err
	}
	h.tr = tracer()
	h.te, err = h.tr.Seize(h.Pid)
	if err != nil {
		h.stop()
		return nil, err
	}
	return h, nil
}

// tracer is the one ptrace thread of all probes. One is enough (requests
// are short), and internal/ptrace caches per-process state in a package
// map that only a single tracer thread may touch. It lives as long as gockpt.
var tracer = sync.OnceValue(ptrace.NewTracer)

// stop kills the helper by PID and reaps it. Safe to call more than once.
func (h *helper) stop() {
	if h.cmd == nil {
		return
	}
	// Processes a probe made the helper create are killed and reaped by
	// that probe; any left after a failure die here, by PID, before their
	// parent, and are reaped by whoever inherits them.
	for _, c := range childrenOf(h.Pid) {
		unix.Kill(c, unix.SIGKILL)
	}
	// Forget the cached vDSO gadget before the PID can be reused.
	if h.tr != nil {
		h.tr.ForgetProcess(h.Pid)
	}
	unix.Kill(h.Pid, unix.SIGKILL)
	// The tracer thread is in our thread group, so the real-parent wait
	// reaps a traced child too.
	h.cmd.Wait()
	h.cmd = nil
}

// syscall injects nr into the helper and turns a -errno result into an error.
func (h *helper) syscall(name string, nr uint64, args ...uint64) (uint64, error) {
	ret, err := h.te.Syscall(nr, args...)
	if err != nil {
		return 0, fmt.Errorf("inject %s: %w", name, err)
	}
	if e := ptrace.Errno(ret); e != 0 {
		return 0, fmt.Errorf("injected %s in task %d: %w", name, h.Pid, e)
	}
	return ret, nil
}

// scratch maps one read-write page in the helper for syscall arguments.
func (h *helper) scratch() (uint64, error) {
	return h.syscall("mmap", unix.SYS_MMAP, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
}

// pageSize is the x86-64 base page size; probes map whole pages.
const pageSize = 4096

// errnoOf digs the errno out of err, or 0.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// fail builds an unsupported Result from err.
func fail(err error) Result { return Result{Detail: err.Error(), Err: err} }

// failf builds an unsupported Result with a formatted detail.
func failf(format string, args ...any) Result {
	err := fmt.Errorf(format, args...)
	return Result{Detail: err.Error(), Err: err}
}

// ok builds a supported Result.
func ok(format string, args ...any) Result {
	return Result{Supported: true, Detail: fmt.Sprintf(format, args...)}
}

// childrenOf lists the children of a single-threaded process.
func childrenOf(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
