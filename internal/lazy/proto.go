// Package lazy is post-copy restore: restore maps the memory that may come
// lazily empty, registers it with a userfaultfd made inside each task and
// hands the userfaultfds to the lazy-pages daemon, which puts every page in
// place, on demand (a fault) or ahead of it (in the background), from local
// images or from a page server.
//
// Restore and the daemon talk over a unix stream socket. Each task is one
// message carrying its userfaultfd (SCM_RIGHTS): magic, the task's PID,
// the number of lazy runs, then the runs (start, length); a message with
// PID 0 ends the list. The daemon answers each task with one byte, 1 once
// it serves the task's faults, so that restore never lets a task run (or
// touches its memory) before someone answers its faults.
//
// One goroutine runs the daemon: it reads every userfaultfd and makes every
// copy, so that the events of a task (fork, mremap, madvise, munmap) and
// the copies into it are seen in the order they happen.
package lazy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/gockpt/gockpt/internal/mem"
)

// msgMagic starts every task message.
const msgMagic = 0x4c5a5947 // "GYZL"

// maxRuns bounds the runs of one task message: a task has at most
// vm.max_map_count areas, and restore sends runs per area.
const maxRuns = 1 << 20

// Run is a range of lazy pages: page-aligned, at least one page.
type Run struct {
	Start, Len uint64
}

// End is the address after the run.
func (r Run) End() uint64 { return r.Start + r.Len }

// taskHeader is magic, PID, number of runs.
const taskHeader = 12

// encodeTask is a task message (without its fd).
func encodeTask(pid int, runs []Run) []byte {
	b := make([]byte, taskHeader+16*len(runs))
	binary.LittleEndian.PutUint32(b, msgMagic)
	binary.LittleEndian.PutUint32(b[4:], uint32(pid))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(runs)))
	for i, r := range runs {
		binary.LittleEndian.PutUint64(b[taskHeader+16*i:], r.Start)
		binary.LittleEndian.PutUint64(b[taskHeader+16*i+8:], r.Len)
	}
	return b
}

// readTask reads one task message's body after its header was read; pid 0
// ends the list.
func decodeHeader(h []byte) (pid int, n int, err error) {
	if m := binary.LittleEndian.Uint32(h); m != msgMagic {
		return 0, 0, fmt.Errorf("bad magic %#x: the peer is not gockpt restore", m)
	}
	pid = int(binary.LittleEndian.Uint32(h[4:]))
	n = int(binary.LittleEndian.Uint32(h[8:]))
	if pid < 0 || pid > 1<<22 {
		return 0, 0, fmt.Errorf("PID %d out of range", pid)
	}
	if n > maxRuns || (pid == 0 && n != 0) {
		return 0, 0, fmt.Errorf("task %d: %d runs", pid, n)
	}
	return pid, n, nil
}

// readRuns reads and checks n runs.
func readRuns(r io.Reader, pid, n int) ([]Run, error) {
	runs := make([]Run, 0, min(n, 4096))
	var b [16]byte
	var end uint64
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("task %d: run %d: %w", pid, i, err)
		}
		run := Run{Start: binary.LittleEndian.Uint64(b[:]), Len: binary.LittleEndian.Uint64(b[8:])}
		if run.Start%mem.PageSize != 0 || run.Len%mem.PageSize != 0 || run.Len == 0 || run.End() < run.Start || run.Start < end {
			return nil, fmt.Errorf("task %d: run %#x+%#x is not page-aligned, empty, or out of order", pid, run.Start, run.Len)
		}
		end = run.End()
		runs = append(runs, run)
	}
	return runs, nil
}

// errNoFd: a task message came without its userfaultfd.
var errNoFd = errors.New("no userfaultfd came with the message")
