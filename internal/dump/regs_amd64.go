package dump

import (
	"encoding/binary"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// gpregsEntry converts ptrace registers to CRIU's user_x86_regs_entry.
func gpregsEntry(r *ptrace.Regs) *pb.UserX86RegsEntry {
	return &pb.UserX86RegsEntry{
		R15: proto.Uint64(r.R15), R14: proto.Uint64(r.R14), R13: proto.Uint64(r.R13), R12: proto.Uint64(r.R12),
		Bp: proto.Uint64(r.Rbp), Bx: proto.Uint64(r.Rbx), R11: proto.Uint64(r.R11), R10: proto.Uint64(r.R10),
		R9: proto.Uint64(r.R9), R8: proto.Uint64(r.R8), Ax: proto.Uint64(r.Rax), Cx: proto.Uint64(r.Rcx),
		Dx: proto.Uint64(r.Rdx), Si: proto.Uint64(r.Rsi), Di: proto.Uint64(r.Rdi), OrigAx: proto.Uint64(r.Orig_rax),
		Ip: proto.Uint64(r.Rip), Cs: proto.Uint64(r.Cs), Flags: proto.Uint64(r.Eflags), Sp: proto.Uint64(r.Rsp),
		Ss: proto.Uint64(r.Ss), FsBase: proto.Uint64(r.Fs_base), GsBase: proto.Uint64(r.Gs_base),
		Ds: proto.Uint64(r.Ds), Es: proto.Uint64(r.Es), Fs: proto.Uint64(r.Fs), Gs: proto.Uint64(r.Gs),
		Mode: pb.UserX86RegsMode_NATIVE.Enum(),
	}
}

func u32s(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return out
}

func u64s(b []byte) []uint64 {
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return out
}

// fpregsEntry converts an NT_X86_XSTATE buffer into CRIU's fpregs entry: the
// legacy fxsave area, then each extended component CRIU knows, cut out at the
// offsets this CPU uses. The raw buffer is kept too, so that restore puts
// back every component, including ones CRIU's schema has no field for (AMX).
func fpregsEntry(x []byte) *pb.UserX86FpregsEntry {
	le := binary.LittleEndian
	if len(x) < 512 {
		return nil
	}
	fp := &pb.UserX86FpregsEntry{
		Cwd:       proto.Uint32(uint32(le.Uint16(x[0:]))),
		Swd:       proto.Uint32(uint32(le.Uint16(x[2:]))),
		Twd:       proto.Uint32(uint32(le.Uint16(x[4:]))),
		Fop:       proto.Uint32(uint32(le.Uint16(x[6:]))),
		Rip:       proto.Uint64(le.Uint64(x[8:])),
		Rdp:       proto.Uint64(le.Uint64(x[16:])),
		Mxcsr:     proto.Uint32(le.Uint32(x[24:])),
		MxcsrMask: proto.Uint32(le.Uint32(x[28:])),
		StSpace:   u32s(x[32:160]),
		XmmSpace:  u32s(x[160:416]),
		XsaveRaw:  x,
	}
	if len(x) < 576 {
		return fp
	}
	bv := le.Uint64(x[512:])
	xs := &pb.UserX86XsaveEntry{XstateBv: proto.Uint64(bv)}
	part := func(i uint32) []byte {
		off, size := ptrace.XstateComponent(i)
		if off == 0 || int(off+size) > len(x) {
			return nil
		}
		return x[off : off+size]
	}
	xs.YmmhSpace = u32s(part(ptrace.XfeatYMM))
	xs.BndregState = u64s(part(ptrace.XfeatBNDREGS))
	xs.BndcsrState = u64s(part(ptrace.XfeatBNDCSR))
	xs.OpmaskReg = u64s(part(ptrace.XfeatOpmask))
	xs.ZmmUpper = u64s(part(ptrace.XfeatZMMHi256))
	xs.Hi16Zmm = u64s(part(ptrace.XfeatHi16ZMM))
	xs.Pkru = u32s(part(ptrace.XfeatPKRU))
	fp.Xsave = xs
	return fp
}
