package restore

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// An AIO ring (io_setup) is restored the way CRIU does it: its dumped pages
// go to a private area at its place, then a new context of the same size is
// set up, requests that complete at once (1-byte writes to /dev/null) move
// the kernel's tail to where it was, head and events are copied from the
// dumped ring, and the new ring is moved over the old place: its address is
// the context's id.

// struct aio_ring header: id, nr, head, tail, magic, compat_features,
// incompat_features, header_length, all u32; the io_events follow.
const (
	aioRingHeader = 32
	aioRingMagic  = 0xa10a10a1
	iocbCmdPwrite = 1
)

// restoreAIORings rebuilds the task's AIO rings over the areas that hold
// their dumped pages.
func restoreAIORings(t *Task, r *remote) error {
	for _, a := range t.MM.GetAios() {
		if err := restoreAIORing(t, r, a); err != nil {
			return fmt.Errorf("AIO ring %#x: %w", a.GetId(), err)
		}
	}
	return nil
}

func restoreAIORing(t *Task, r *remote, a *pb.AioRingEntry) error {
	old := make([]byte, a.GetRingLen())
	if len(old) < aioRingHeader {
		return fmt.Errorf("ring of %d bytes is too short", len(old))
	}
	if err := ptrace.ReadMem(t.Pid, a.GetId(), old); err != nil {
		return err
	}
	le := binary.LittleEndian
	nr, head, tail := le.Uint32(old[4:]), le.Uint32(old[8:]), le.Uint32(old[12:])
	ctxp, err := r.u64s(0)
	if err != nil {
		return err
	}
	if _, err := r.call(fmt.Sprintf("io_setup(%d)", a.GetNrReq()), unix.SYS_IO_SETUP, uint64(a.GetNrReq()), ctxp); err != nil {
		return err
	}
	b, err := r.read(ctxp, 8)
	if err != nil {
		return err
	}
	ctx := le.Uint64(b)
	hdr := make([]byte, aioRingHeader)
	if err := ptrace.ReadMem(t.Pid, ctx, hdr); err != nil {
		return err
	}
	want := uint32((uint64(len(old)) - aioRingHeader) / 32)
	if newNr := le.Uint32(hdr[4:]); newNr != nr || nr != want || head >= nr || tail >= nr {
		return fmt.Errorf("dumped ring has %d events (head %d, tail %d), a %d-byte ring %d, the new one %d: restore on the machine the dump was taken on", nr, head, tail, len(old), want, newNr)
	}
	if head != 0 || tail != 0 {
		if err := moveAIOTail(r, t.Pid, ctx, nr, head, tail); err != nil {
			return err
		}
	}
	if err := ptrace.WriteMem(t.Pid, ctx+aioRingHeader, old[aioRingHeader:]); err != nil {
		return err
	}
	if _, err := r.call("mremap the AIO ring into place", unix.SYS_MREMAP, ctx, uint64(len(old)), uint64(len(old)),
		unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, a.GetId()); err != nil {
		return err
	}
	return nil
}

// moveAIOTail submits requests that complete at once until the new ring's
// tail is the dumped one, keeping its head where it was (a full turn first
// when the tail had wrapped around below the head).
func moveAIOTail(r *remote, pid int, ctx uint64, nr, head, tail uint32) error {
	devnull, err := r.str("/dev/null")
	if err != nil {
		return err
	}
	fd, err := r.call("open /dev/null for AIO", unix.SYS_OPENAT, uint64(unix.AT_FDCWD&0xffffffff)|0xffffffff00000000, devnull, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer r.call("close", unix.SYS_CLOSE, fd)
	count := tail
	if tail < head {
		count = nr + tail
	}
	maxr := min(count, nr-1)
	buf, err := r.u64s(0)
	if err != nil {
		return err
	}
	// struct iocb: data, key+rw_flags, opcode+reqprio+fildes, buf,
	// nbytes, offset, reserved2, flags+resfd.
	iocb, err := r.u64s(0, 0, iocbCmdPwrite|fd<<32, buf, 1, 0, 0, 0)
	if err != nil {
		return err
	}
	ptrs := make([]uint64, maxr)
	for i := range ptrs {
		ptrs[i] = iocb
	}
	iocbp, err := r.u64s(ptrs...)
	if err != nil {
		return err
	}
	hb := make([]byte, 4)
	for i := uint32(0); i < count; {
		n, err := r.call("io_submit", unix.SYS_IO_SUBMIT, ctx, uint64(min(count-i, maxr)), iocbp)
		if err != nil {
			return err
		}
		i += uint32(n)
		// Setting the head is what io_getevents would do: it frees
		// room for the next round.
		binary.LittleEndian.PutUint32(hb, min(i, head))
		if err := ptrace.WriteMem(pid, ctx+8, hb); err != nil {
			return err
		}
	}
	return nil
}
