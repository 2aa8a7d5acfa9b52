package restore

import (
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

func seqU32(n int, salt uint32) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = salt<<24 | uint32(i)
	}
	return out
}

func seqU64(n int, salt uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = salt<<56 | uint64(i)
	}
	return out
}

// CRIU's fpregs fields land where this CPU's xsave layout has them.
func TestXsaveFromFields(t *testing.T) {
	le := binary.LittleEndian
	feats := []uint32{ptrace.XfeatYMM, ptrace.XfeatOpmask, ptrace.XfeatZMMHi256, ptrace.XfeatHi16ZMM}
	size := uint32(576)
	for _, f := range feats {
		off, sz := ptrace.XstateComponent(f)
		if off == 0 {
			t.Skipf("this CPU has no xsave component %d", f)
		}
		size = max(size, off+sz)
	}
	base := make([]byte, size)
	for i := range base {
		base[i] = 0xee // whatever the thread had
	}
	supported := uint64(1<<ptrace.XfeatFP | 1<<ptrace.XfeatSSE | 1<<ptrace.XfeatYMM | 1<<ptrace.XfeatOpmask | 1<<ptrace.XfeatZMMHi256 | 1<<ptrace.XfeatHi16ZMM)
	le.PutUint64(base[xsavePtraceMask:], supported)
	fp := &pb.UserX86FpregsEntry{
		Cwd: proto.Uint32(0xe7f), Swd: proto.Uint32(0x1234), Twd: proto.Uint32(0x55), Fop: proto.Uint32(7),
		Rip: proto.Uint64(0x1111), Rdp: proto.Uint64(0x2222), Mxcsr: proto.Uint32(0x7f80), MxcsrMask: proto.Uint32(0xffff),
		StSpace: seqU32(32, 1), XmmSpace: seqU32(64, 2),
		Xsave: &pb.UserX86XsaveEntry{
			// AMX tile data (bit 18) has no field: it starts initial.
			XstateBv:  proto.Uint64(supported | 1<<18),
			YmmhSpace: seqU32(64, 3), OpmaskReg: seqU64(8, 4), ZmmUpper: seqU64(64, 5), Hi16Zmm: seqU64(128, 6),
		},
	}
	x, err := xsaveFromFields(fp, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(base) {
		t.Fatalf("%d bytes, want the kernel's %d", len(x), len(base))
	}
	if le.Uint16(x[0:]) != 0xe7f || le.Uint16(x[2:]) != 0x1234 || le.Uint16(x[4:]) != 0x55 || le.Uint16(x[6:]) != 7 ||
		le.Uint64(x[8:]) != 0x1111 || le.Uint64(x[16:]) != 0x2222 || le.Uint32(x[24:]) != 0x7f80 || le.Uint32(x[28:]) != 0xffff {
		t.Errorf("fxsave header % x", x[:32])
	}
	if le.Uint32(x[32+4*31:]) != 1<<24|31 || le.Uint32(x[160:]) != 2<<24 || le.Uint32(x[160+4*63:]) != 2<<24|63 {
		t.Error("st_space or xmm_space misplaced")
	}
	if bv := le.Uint64(x[512:]); bv != supported {
		t.Errorf("xstate_bv %#x, want %#x", bv, supported)
	}
	if xcomp := le.Uint64(x[520:]); xcomp != 0 {
		t.Errorf("xcomp_bv %#x, want 0 (standard layout)", xcomp)
	}
	for _, c := range []struct {
		feat uint32
		last uint64
		wide bool
	}{{ptrace.XfeatYMM, 3<<24 | 63, false}, {ptrace.XfeatOpmask, 4<<56 | 7, true}, {ptrace.XfeatZMMHi256, 5<<56 | 63, true}, {ptrace.XfeatHi16ZMM, 6<<56 | 127, true}} {
		off, sz := ptrace.XstateComponent(c.feat)
		var got uint64
		if c.wide {
			got = le.Uint64(x[off+sz-8:])
		} else {
			got = uint64(le.Uint32(x[off+sz-4:]))
		}
		if got != c.last {
			t.Errorf("component %d ends with %#x, want %#x", c.feat, got, c.last)
		}
	}

	// A component this machine does not save is refused, not dropped.
	le.PutUint64(base[xsavePtraceMask:], supported&^(1<<ptrace.XfeatHi16ZMM))
	_, err = xsaveFromFields(fp, base)
	want := "xsave components 0x80 were in use at dump; this CPU or kernel has no room for them (it saves 0x67): restore on a machine with the same CPU features"
	if err == nil || err.Error() != want {
		t.Errorf("unsupported component: %v, want %q", err, want)
	}
	// A component of the wrong size is damage.
	le.PutUint64(base[xsavePtraceMask:], supported)
	fp.Xsave.OpmaskReg = seqU64(7, 4)
	if _, err = xsaveFromFields(fp, base); err == nil || err.Error() != "fpregs opmask_reg has 7 64-bit words, want 8" {
		t.Errorf("short opmask_reg: %v", err)
	}
}
