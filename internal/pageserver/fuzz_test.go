package pageserver

import (
	"bytes"
	"io"
	"testing"

	"github.com/gockpt/gockpt/internal/images/pagemap"
)

type rw struct {
	io.Reader
	io.Writer
}

func wire(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch p := p.(type) {
		case iov:
			b := make([]byte, iovSize)
			p.marshal(b)
			out = append(out, b...)
		case []byte:
			out = append(out, p...)
		}
	}
	return out
}

// FuzzReceive feeds the page server any byte stream: it must never panic,
// and a session it refuses must leave the directory empty.
func FuzzReceive(f *testing.F) {
	t7 := Task(7).dstID()
	f.Add(wire(iov{cmd: cmdOpen2, dstID: t7}, iov{cmd: cmdAddF, flags: pagemap.FlagPresent, vaddr: 0x1000, nrPages: 1, dstID: t7},
		bytes.Repeat([]byte{1}, pagemap.PageSize), iov{cmd: cmdClose}))
	f.Add(wire(iov{cmd: cmdOpen, dstID: Shmem(3).dstID()}, iov{cmd: cmdAdd, vaddr: 0, nrPages: 1, dstID: Shmem(3).dstID()},
		make([]byte, pagemap.PageSize), iov{cmd: cmdHole, vaddr: 0x1000, nrPages: 1, dstID: Shmem(3).dstID()}, iov{cmd: cmdForceClose}))
	f.Add(wire(iov{cmd: cmdParent, dstID: t7}, iov{cmd: cmdOpen2, dstID: t7}, iov{cmd: cmdAddF, flags: pagemap.FlagLazy, vaddr: 0x7f0000000000, nrPages: 1 << 30, dstID: t7}, iov{cmd: cmdClose}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := newDir(t)
		_, err := Receive(rw{bytes.NewReader(in), io.Discard}, dir, "fuzz")
		if err != nil {
			if got := names(t, dir); len(got) != 0 {
				t.Fatalf("refused session (%v) left %v", err, got)
			}
		}
	})
}
