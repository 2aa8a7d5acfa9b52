package restore

import (
	"encoding/binary"
	"fmt"

	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// Offsets in the standard xsave layout that NT_X86_XSTATE uses.
const (
	xsaveLegacySize = 512 // the fxsave area
	xsaveHeader     = 512 // xstate_bv, then xcomp_bv (0: standard layout)
	// The first 8 software-usable bytes of the fxsave area: for ptrace
	// the kernel writes there the components it saves (its ptrace.Xfeature
	// mask), see arch/x86/include/asm/user.h.
	xsavePtraceMask = 464
	xsaveMinSize    = 576
)

// xsaveFromFields rebuilds a thread's xsave area from CRIU's fpregs fields
// (images CRIU wrote carry no xsave_raw): base is the area the thread has
// now, as the kernel gave it (its size, its software-usable bytes saying which
// components this CPU and kernel save), and every component the image
// names goes in at the offset this CPU uses for it.
func xsaveFromFields(fp *pb.UserX86FpregsEntry, base []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(base) < xsaveLegacySize {
		return nil, fmt.Errorf("the kernel's xsave area is %d bytes, too small for the fxsave area", len(base))
	}
	x := append([]byte(nil), base...)
	le.PutUint16(x[0:], uint16(fp.GetCwd()))
	le.PutUint16(x[2:], uint16(fp.GetSwd()))
	le.PutUint16(x[4:], uint16(fp.GetTwd()))
	le.PutUint16(x[6:], uint16(fp.GetFop()))
	le.PutUint64(x[8:], fp.GetRip())
	le.PutUint64(x[16:], fp.GetRdp())
	le.PutUint32(x[24:], fp.GetMxcsr())
	le.PutUint32(x[28:], fp.GetMxcsrMask())
	if err := putU32s(x[32:160], fp.GetStSpace(), "st_space"); err != nil {
		return nil, err
	}
	if err := putU32s(x[160:416], fp.GetXmmSpace(), "xmm_space"); err != nil {
		return nil, err
	}
	if len(x) < xsaveMinSize {
		return x, nil // fxsave only: nothing more to say
	}
	supported := le.Uint64(x[xsavePtraceMask:])
	xs := fp.GetXsave()
	bv := uint64(1<<ptrace.XfeatFP | 1<<ptrace.XfeatSSE)
	if xs != nil {
		// Components the image has no field for start in their initial
		// state, as CRIU's own restore leaves them.
		bv = xs.GetXstateBv() & (1<<ptrace.XfeatFP | 1<<ptrace.XfeatSSE | 1<<ptrace.XfeatYMM | 1<<ptrace.XfeatBNDREGS | 1<<ptrace.XfeatBNDCSR |
			1<<ptrace.XfeatOpmask | 1<<ptrace.XfeatZMMHi256 | 1<<ptrace.XfeatHi16ZMM | 1<<ptrace.XfeatPKRU)
	}
	if extra := bv &^ supported; extra != 0 {
		return nil, fmt.Errorf("xsave components %#x were in use at dump; this CPU or kernel has no room for them (it saves %#x): restore on a machine with the same CPU features", extra, supported)
	}
	for _, c := range []struct {
		feat uint32
		name string
		u32  []uint32
		u64  []uint64
	}{
		{ptrace.XfeatYMM, "ymmh_space", xs.GetYmmhSpace(), nil},
		{ptrace.XfeatBNDREGS, "bndreg_state", nil, xs.GetBndregState()},
		{ptrace.XfeatBNDCSR, "bndcsr_state", nil, xs.GetBndcsrState()},
		{ptrace.XfeatOpmask, "opmask_reg", nil, xs.GetOpmaskReg()},
		{ptrace.XfeatZMMHi256, "zmm_upper", nil, xs.GetZmmUpper()},
		{ptrace.XfeatHi16ZMM, "hi16_zmm", nil, xs.GetHi16Zmm()},
		{ptrace.XfeatPKRU, "pkru", xs.GetPkru(), nil},
	} {
		if bv&(1<<c.feat) == 0 {
			continue
		}
		off, size := ptrace.XstateComponent(c.feat)
		if off == 0 || int(off+size) > len(x) {
			return nil, fmt.Errorf("xsave component %d (%s) has no place in this kernel's %d-byte xsave area", c.feat, c.name, len(x))
		}
		dst := x[off : off+size]
		clear(dst)
		var err error
		if c.u32 != nil {
			err = putU32s(dst, c.u32, c.name)
		} else {
			err = putU64s(dst, c.u64, c.name)
		}
		if err != nil {
			return nil, err
		}
	}
	le.PutUint64(x[xsaveHeader:], bv)
	clear(x[xsaveHeader+8 : xsaveMinSize]) // xcomp_bv and reserved: standard layout
	return x, nil
}

func putU32s(dst []byte, v []uint32, name string) error {
	if len(v)*4 != len(dst) {
		return fmt.Errorf("fpregs %s has %d 32-bit words, want %d", name, len(v), len(dst)/4)
	}
	for i, w := range v {
		binary.LittleEndian.PutUint32(dst[i*4:], w)
	}
	return nil
}

func putU64s(dst []byte, v []uint64, name string) error {
	if len(v)*8 != len(dst) {
		return fmt.Errorf("fpregs %s has %d 64-bit words, want %d", name, len(v), len(dst)/8)
	}
	for i, w := range v {
		binary.LittleEndian.PutUint64(dst[i*8:], w)
	}
	return nil
}

// setFPState puts back a thread's vector and FPU state: gockpt's images
// carry the whole area as the kernel gave it, CRIU's only its fields.
func setFPState(te *ptrace.Tracee, ti *pb.ThreadInfoX86) error {
	fp := ti.GetFpregs()
	if x := fp.GetXsaveRaw(); len(x) > 0 {
		return te.SetXstate(x)
	}
	if fp == nil {
		return nil
	}
	base, err := te.GetXstate()
	if err != nil {
		return err
	}
	x, err := xsaveFromFields(fp, base)
	if err != nil {
		return fmt.Errorf("thread %d: %w", te.Tid, err)
	}
	return te.SetXstate(x)
}
