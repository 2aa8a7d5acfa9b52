package dump

import (
	"encoding/binary"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// aioRing reports the ring of an AIO context (io_setup), which maps shows
// as the deleted file /[aio].
func aioRing(a *proc.SmapsVMA) bool {
	return a.Kind == proc.KindFile && a.Path == "/[aio]" && a.Deleted
}

// aioRingEntry checks the ring's header as CRIU does (magic, no features,
// header size, event count matching the size) and describes it as CRIU
// does: the context id is the ring's address, and nr_req the io_setup
// argument that makes a ring of this size (the kernel doubles the request
// count and adds 2).
func aioRingEntry(c *files.Checker, pid int, a *proc.SmapsVMA) (*pb.AioRingEntry, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	defer f.Close()
	hdr := make([]byte, 32)
	if _, err := f.ReadAt(hdr, int64(a.Start)); err != nil {
		return nil, fmt.Errorf("task %d VMA %#x-%#x: read AIO ring header: %w", pid, a.Start, a.End, err)
	}
	le := binary.LittleEndian
	nr := uint64(le.Uint32(hdr[4:]))
	events := (a.Len() - 32) / 32
	if le.Uint32(hdr[16:]) != 0xa10a10a1 || le.Uint32(hdr[20:]) != 1 || le.Uint32(hdr[24:]) != 0 || le.Uint32(hdr[28:]) != 32 || nr != events || events < 2 {
		return nil, &support.Refusal{Pid: pid, Comm: c.Comm(pid), Kind: support.AsyncIO, Where: fmt.Sprintf("VMA %#x-%#x", a.Start, a.End),
			Object: fmt.Sprintf("AIO ring with an unknown header (magic %#x, %d events in %d bytes)", le.Uint32(hdr[16:]), nr, a.Len())}
	}
	return &pb.AioRingEntry{Id: proto.Uint64(a.Start), NrReq: proto.Uint32(uint32((events - 2) / 2)), RingLen: proto.Uint32(uint32(a.Len()))}, nil
}
