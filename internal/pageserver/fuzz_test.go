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

// FuzzServeLazy feeds a lazy page server any byte stream: it must never
// panic, answer each GET with at most what was asked (and at most
// maxGetPages) followed by exactly that data, right, and stop at the first
// command that is not GET or GET it has nothing for.
func FuzzServeLazy(f *testing.F) {
	get := func(nr, vaddr, dst uint64) iov { return iov{cmd: cmdGet, nrPages: nr, vaddr: vaddr, dstID: dst} }
	f.Add(wire(get(8, 0x1000, 100), get(1, 0x4000, 100), iov{cmd: cmdClose}))
	f.Add(wire(get(1<<62, 0xa000, 100), get(1, 0x1001, 100), get(0, 0x1000, 100), iov{cmd: cmdForceClose}))
	f.Add(wire(get(1, 0x1000, Task(100).dstID()), iov{cmd: cmdOpen2, dstID: Task(100).dstID()}))
	f.Add(wire(get(3, 0x8000, 100), get(1, 0x1000, 100))[:40])
	f.Add([]byte{})
	src := openSource(f, lazyImages(f))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := rawLazy(t, src, in)
		for cmds := in; ; cmds = cmds[iovSize:] {
			if len(cmds) < iovSize {
				if err == nil || len(out) != 0 {
					t.Fatalf("input ends with %d bytes: error %v, %d bytes left in the output", len(cmds), err, len(out))
				}
				return
			}
			v := parseIOV(cmds)
			switch v.cmd {
			case cmdGet:
				if len(out) < iovSize {
					t.Fatalf("GET %+v unanswered", v)
				}
				a := parseIOV(out)
				out = out[iovSize:]
				if a.cmd != cmdAddF || a.vaddr != v.vaddr || a.dstID != v.dstID || a.nrPages > v.nrPages || a.nrPages > maxGetPages ||
					(a.nrPages > 0) != (a.flags == pagemap.FlagPresent) || (a.nrPages == 0) != (a.flags == 0) {
					t.Fatalf("GET %+v answered %+v", v, a)
				}
				if a.nrPages == 0 {
					if err == nil || len(out) != 0 {
						t.Fatalf("GET %+v answered with no pages: error %v, %d bytes more answered", v, err, len(out))
					}
					return
				}
				n := a.nrPages * pagemap.PageSize
				if uint64(len(out)) < n {
					t.Fatalf("GET %+v: %d bytes of data, want %d", v, len(out), n)
				}
				want := make([]byte, n)
				if rerr := src.ReadLazy(int(v.dstID), v.vaddr, want); rerr != nil || !bytes.Equal(out[:n], want) {
					t.Fatalf("GET %+v: data differs (%v)", v, rerr)
				}
				out = out[n:]
			case cmdClose, cmdForceClose:
				if err != nil || !bytes.Equal(out, []byte{0, 0, 0, 0}) {
					t.Fatalf("CLOSE: error %v, answer %x", err, out)
				}
				return
			default:
				if err == nil || len(out) != 0 {
					t.Fatalf("command %+v: error %v, %d bytes more answered", v, err, len(out))
				}
				return
			}
		}
	})
}
