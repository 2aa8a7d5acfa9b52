package parasite

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// pipeSize is what DumpPages asks for its pipe: the default pipe-max-size,
// the most an unprivileged (no CAP_SYS_RESOURCE) caller gets.
const pipeSize = 1 << 20

// DumpPages streams the task's memory in ranges, in order, into w. The blob
// vmsplices the pages into a pipe (no copy in the task), and gockpt splices
// them out into w when w is an *os.File that supports it (one copy, in the
// kernel), reading and writing otherwise. It returns the bytes written.
func (p *Parasite) DumpPages(ranges []Range, w io.Writer) (int64, error) {
	if p.conn == nil || p.done {
		return 0, fmt.Errorf("task %d: parasite DumpPages: not running", p.pid)
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return 0, fmt.Errorf("pipe for pages: %w", err)
	}
	rfd, wfd := fds[0], fds[1]
	defer unix.Close(wfd)
	defer func() {
		if rfd >= 0 {
			unix.Close(rfd)
		}
	}()
	// A bigger pipe means fewer round trips; the kernel may refuse.
	unix.FcntlInt(uintptr(wfd), unix.F_SETPIPE_SZ, pipeSize)
	if err := unix.SetNonblock(rfd, true); err != nil {
		return 0, err
	}
	out := newPageSink(w)
	var total int64
	for len(ranges) > 0 {
		n := min(len(ranges), maxRangesPerReq)
		got, err := p.pagesChunk(ranges[:n], &rfd, wfd, out)
		total += got
		if err != nil {
			return total, err
		}
		ranges = ranges[n:]
	}
	return total, nil
}

type pagesReply struct {
	bytes int64
	err   error
}

// pagesChunk runs one DumpPages request, draining the pipe while the blob
// fills it. On an output error it closes the read end (*rfd = -1), so the
// blob fails with EPIPE instead of waiting forever.
func (p *Parasite) pagesChunk(rs []Range, rfd *int, wfd int, out *pageSink) (int64, error) {
	var want int64
	for _, r := range rs {
		want += int64(r.Len)
	}
	p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	p.busy.Store(true)
	if _, _, err := p.conn.WriteMsgUnix(encodeRequest(cmdPages, encodeRanges(rs)), unix.UnixRights(wfd), nil); err != nil {
		return 0, fmt.Errorf("task %d: parasite DumpPages: send: %w", p.pid, err)
	}
	// The reply comes once everything is in the pipe, which needs us
	// draining: no deadline while pages flow (a chunk of gigabytes takes
	// longer than any timeout); the drain loop below watches progress and
	// sets one when it gives up or is done.
	var replyBy atomic.Int64 // UnixNano; 0: none yet
	deadline := func() time.Time {
		if v := replyBy.Load(); v != 0 {
			return time.Unix(0, v)
		}
		return time.Now().Add(time.Hour)
	}
	replies := make(chan pagesReply, 1)
	go func() {
		b, err := p.replyUntil(cmdPages, deadline)
		r := pagesReply{err: err}
		if len(b) >= 8 {
			r.bytes = int64(le.Uint64(b))
		}
		replies <- r
	}()

	var got int64
	var rep *pagesReply
	expect := want
	last := time.Now()
	for got < expect {
		n, err := out.from(*rfd, expect-got)
		if n > 0 {
			got += n
			last = time.Now()
			continue
		}
		if err != nil && err != unix.EAGAIN {
			unix.Close(*rfd)
			*rfd = -1
			if rep == nil {
				// Wait for the blob's reply, so the next command does not
				// read this one's.
				replyBy.Store(time.Now().Add(p.timeout).UnixNano())
				<-replies
			}
			return got, fmt.Errorf("task %d: write pages: %w", p.pid, err)
		}
		if rep == nil {
			select {
			case r := <-replies:
				rep = &r
				if r.err != nil {
					expect = min(expect, r.bytes) // drain what made it in, then fail
				}
				continue
			default:
			}
		} else if rep.err == nil {
			return got, fmt.Errorf("task %d: parasite DumpPages: blob reported %d bytes, the pipe held %d", p.pid, rep.bytes, got)
		}
		if time.Since(last) > p.timeout {
			if rep == nil {
				replyBy.Store(time.Now().UnixNano())
				<-replies
			}
			return got, fmt.Errorf("task %d: parasite DumpPages: no data for %v after %d of %d bytes (status %s)", p.pid, p.timeout, got, want, p.status())
		}
		unix.Poll([]unix.PollFd{{Fd: int32(*rfd), Events: unix.POLLIN}}, 20)
	}
	if rep == nil {
		replyBy.Store(time.Now().Add(p.timeout).UnixNano())
		r := <-replies
		rep = &r
	}
	if rep.err != nil {
		return got, rep.err
	}
	if rep.bytes != want || got != want {
		return got, fmt.Errorf("task %d: parasite DumpPages: %d bytes asked, blob spliced %d, got %d", p.pid, want, rep.bytes, got)
	}
	return got, nil
}

// pageSink writes pipe contents to an io.Writer, with splice when the
// writer is a file descriptor that takes it.
type pageSink struct {
	w   io.Writer
	fd  int // -1: copy through buf
	buf []byte
}

func newPageSink(w io.Writer) *pageSink {
	s := &pageSink{w: w, fd: -1}
	if f, ok := w.(*os.File); ok {
		s.fd = int(f.Fd())
	}
	return s
}

// from moves up to n bytes from the non-blocking pipe rfd.
func (s *pageSink) from(rfd int, n int64) (int64, error) {
	if s.fd >= 0 {
		m, err := unix.Splice(rfd, nil, s.fd, nil, int(min(n, pipeSize)), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err == unix.EINTR {
			return 0, unix.EAGAIN
		}
		if err != unix.EINVAL {
			return m, err
		}
		s.fd = -1 // this descriptor does not take splice: copy
	}
	if s.buf == nil {
		s.buf = make([]byte, pipeSize)
	}
	m, err := unix.Read(rfd, s.buf[:min(n, pipeSize)])
	if err == unix.EINTR {
		return 0, unix.EAGAIN
	}
	if m <= 0 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if _, err := s.w.Write(s.buf[:m]); err != nil {
		return 0, err
	}
	return int64(m), nil
}

// vmChunk is how much ReadPagesVM reads per process_vm_readv.
const vmChunk = 4 << 20

// ReadPagesVM copies the memory of task pid in ranges, in order, into w
// with process_vm_readv: no parasite needed, one more copy than DumpPages
// with a file. It returns the bytes written.
func ReadPagesVM(pid int, ranges []Range, w io.Writer) (int64, error) {
	buf := make([]byte, vmChunk)
	var total int64
	var remote []unix.RemoteIovec
	fill := 0
	flush := func() error {
		if fill == 0 {
			return nil
		}
		local := []unix.Iovec{{Base: &buf[0]}}
		local[0].SetLen(fill)
		n, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err == nil && n != fill {
			err = fmt.Errorf("short read of %d bytes", n)
		}
		if err != nil {
			first := remote[0]
			return fmt.Errorf("task %d: read %d bytes from %#x: %w", pid, fill, first.Base, err)
		}
		if _, err := w.Write(buf[:fill]); err != nil {
			return err
		}
		total += int64(fill)
		remote, fill = remote[:0], 0
		return nil
	}
	for _, r := range ranges {
		addr, left := r.Addr, r.Len
		for left > 0 {
			n := min(left, uint64(len(buf)-fill))
			remote = append(remote, unix.RemoteIovec{Base: uintptr(addr), Len: int(n)})
			fill += int(n)
			addr += n
			left -= n
			if fill == len(buf) || len(remote) == 1024 {
				if err := flush(); err != nil {
					return total, err
				}
			}
		}
	}
	return total, flush()
}
