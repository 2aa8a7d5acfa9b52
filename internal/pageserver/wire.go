// Package pageserver speaks CRIU's page-server protocol (criu/page-xfer.c,
// CRIU 4.2): a dump sends the pages of each task, and of each shared memory
// object, over one TCP connection to a page server that writes them as
// pagemap and pages images.
//
// The stream is a series of 32-byte commands (struct page_server_iov, little
// endian: u32 cmd with the pagemap flags in its upper 16 bits, 4 bytes of
// padding, u64 nr_pages, u64 vaddr, u64 dst_id), each ADD carrying its
// nr_pages pages of data right behind it. OPEN2 and PARENT are answered (a
// byte and an int32: whether the server has parent images for the target),
// and so is CLOSE (an int32 status, 0 when everything was written).
//
// In post-copy the direction turns: a lazy-pages daemon asks a page server
// started with --lazy-pages for pages with GET, and each answer is an ADD_F
// with the pages' data (lazy.go).
//
// # Compression (gockpt to gockpt)
//
// CRIU's protocol has no compression; gockpt adds it as an extension that
// only a gockpt client asks for (dump, pre-dump and lazy-pages with
// --compress) and that CRIU never sees otherwise. Without --compress the
// stream is CRIU's, byte for byte, whichever side is gockpt.
//
// The client's first command is then COMPRESS, a page_server_iov with cmd
// 0x6763 (no pagemap flags; far from CRIU's command numbers, so that no
// CRIU version gives it a meaning), nr_pages the algorithm (1: zstd, the
// only one), vaddr the directions to compress (bit 0: what the client
// sends from now on, its commands and pages; bit 1: what the server sends
// after its answer, its answers and GET's pages), dst_id the magic
// 0x5a54504b434f47 ("GOCKPTZ" in ASCII): a command that has COMPRESS's
// number without the magic is an unknown command. The server answers one
// byte, uncompressed:
//
//	0  accepted: each direction asked for is, from the next byte on, one
//	   zstd frame that lasts until the connection closes
//	1  unknown algorithm, 2 unknown directions, 3 COMPRESS after another
//	   command: refused, and the server ends the session
//
// A server that does not know COMPRESS (CRIU's: "Unknown command"; a
// gockpt's from before it) ends the session without an answer: the client
// reports that the server does not take --compress. A CRIU client never
// sends COMPRESS, so a gockpt server talks to it as before.
//
// Whoever sends compressed data flushes the compressor (a zstd block,
// not the end of the frame) whenever it waits for an answer or answers
// (OPEN2, PARENT, CLOSE, GET), and only then: between answers the
// compressor makes blocks as large as it likes. The frame never ends
// before the connection does, and carries no checksum (TCP and TLS check
// the bytes). With TLS the compressed stream goes inside TLS; neither
// side then needs records to be whole, as a CRIU peer does. The decoder
// keeps at most an 8 MiB window and decodes block by block as asked: a
// frame that asks for a larger window is refused, and so is anything but
// one zstd frame (a skippable frame, data after its end), so that however
// much a stream inflates (a decompression bomb), memory stays bounded.
//
// Measured (BenchmarkLink, 256 MiB, 2 cores): over 1 Gbit/s with 1 ms of
// delay a dump's pages go 1.5-1.7 times as fast compressed (ratio 2.5-6.4
// on heaps), lazy GETs 1.1-1.3 times; random pages lose nothing sending
// and 3% fetching. On loopback compression is 3-5 times slower: zstd's
// fastest level makes 250-650 MB/s here. So it is off by default.
//
// One goroutine owns a Client or a server session: the protocol is strictly
// sequential.
package pageserver

import (
	"encoding/binary"
	"fmt"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
)

// Commands, as criu/page-xfer.c numbers them.
const (
	cmdAdd        = 1 // old: pages, implicitly PE_PRESENT
	cmdHole       = 2 // old: pages in the parent, implicitly PE_PARENT
	cmdOpen       = 3 // old: open a target without an answer
	cmdOpen2      = 4 // open a target; answered with has_parent (1 byte)
	cmdParent     = 5 // does the server have parent images? (int32 answer)
	cmdAddF       = 6 // a pagemap entry with its flags; data when PE_PRESENT
	cmdGet        = 7 // lazy pages: send these pages back
	cmdClose      = 0x1023
	cmdForceClose = 0x1024
)

const (
	cmdBits  = 16
	cmdMask  = 1<<cmdBits - 1
	typeBits = 8
	typeMask = 1<<typeBits - 1
)

// Target types in dst_id.
const (
	typePid   = 1
	typeShmem = 2
)

// iovSize is the size of one command on the wire.
const iovSize = 32

// iov is one command.
type iov struct {
	cmd     uint32 // without the flags
	flags   uint32 // pagemap flags (ADD_F, GET's answer)
	nrPages uint64
	vaddr   uint64
	dstID   uint64
}

func (v iov) marshal(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], v.flags<<cmdBits|v.cmd)
	binary.LittleEndian.PutUint32(b[4:], 0)
	binary.LittleEndian.PutUint64(b[8:], v.nrPages)
	binary.LittleEndian.PutUint64(b[16:], v.vaddr)
	binary.LittleEndian.PutUint64(b[24:], v.dstID)
}

func parseIOV(b []byte) iov {
	c := binary.LittleEndian.Uint32(b[0:])
	return iov{
		cmd:     c & cmdMask,
		flags:   c >> cmdBits,
		nrPages: binary.LittleEndian.Uint64(b[8:]),
		vaddr:   binary.LittleEndian.Uint64(b[16:]),
		dstID:   binary.LittleEndian.Uint64(b[24:]),
	}
}

// Target names what a run of pages belongs to: a task (by PID) or a shared
// memory object (by shmid).
type Target struct {
	Shmem bool
	ID    uint64
}

// Task is the target of task pid's private memory.
func Task(pid int) Target { return Target{ID: uint64(pid)} }

// Shmem is the target of shared memory object shmid.
func Shmem(shmid uint64) Target { return Target{Shmem: true, ID: shmid} }

func (t Target) String() string {
	if t.Shmem {
		return fmt.Sprintf("shared memory %d", t.ID)
	}
	return fmt.Sprintf("task %d", t.ID)
}

// PagemapFile is the image that lists the target's pages.
func (t Target) PagemapFile() string {
	if t.Shmem {
		return images.ShmemPagemapFile(t.ID)
	}
	return images.PagemapFile(int(t.ID))
}

func (t Target) dstID() uint64 {
	typ := uint64(typePid)
	if t.Shmem {
		typ = typeShmem
	}
	return t.ID<<typeBits | typ
}

// maxID bounds a target's id: a PID or a shmid (an inode number) both fit
// in 32 bits on Linux.
const maxID = 1<<32 - 1

// decodeTarget reads dst_id, accepting the type numbers older CRIUs sent
// (they used the changing CR_FD_* constants; criu/page-xfer.c decode_pm).
func decodeTarget(dst uint64) (Target, error) {
	t := Target{ID: dst >> typeBits}
	switch dst & typeMask {
	case typePid, 10, 11, 16, 17:
	case typeShmem, 27, 28, 29, 32, 33, 34:
		t.Shmem = true
	default:
		return Target{}, fmt.Errorf("unknown pagemap type %d in target %#x", dst&typeMask, dst)
	}
	if t.ID == 0 || t.ID > maxID {
		return Target{}, fmt.Errorf("target %#x names id %d, outside 1-%d", dst, t.ID, uint64(maxID))
	}
	return t, nil
}

// validFlags are the pagemap flags a run may carry.
const validFlags = pagemap.FlagParent | pagemap.FlagLazy | pagemap.FlagPresent

// checkRun validates one run of pages of a command.
func checkRun(v iov, flags uint32) (pagemap.Entry, error) {
	e := pagemap.Entry{Vaddr: v.vaddr, NrPages: v.nrPages, Flags: flags}
	switch {
	case flags&^validFlags != 0:
		return e, fmt.Errorf("pages %#x (%d pages): unknown flags %#x", v.vaddr, v.nrPages, flags)
	case flags&pagemap.FlagPresent != 0 && flags&pagemap.FlagParent != 0:
		return e, fmt.Errorf("pages %#x (%d pages) are marked both present and in the parent", v.vaddr, v.nrPages)
	case flags&(pagemap.FlagPresent|pagemap.FlagParent|pagemap.FlagLazy) == 0:
		return e, fmt.Errorf("pages %#x (%d pages) carry no flag saying where their data is", v.vaddr, v.nrPages)
	case v.vaddr%pagemap.PageSize != 0:
		return e, fmt.Errorf("pages at %#x: address not page-aligned", v.vaddr)
	case v.nrPages == 0 || v.nrPages > maxRunPages || e.End() < e.Vaddr:
		return e, fmt.Errorf("pages at %#x: %d pages is not a valid run", v.vaddr, v.nrPages)
	}
	return e, nil
}

// maxRunPages bounds one run (so that the address range cannot wrap): 2^52
// bytes, the x86-64 address space with 5-level paging.
const maxRunPages = 1 << 52 / pagemap.PageSize
