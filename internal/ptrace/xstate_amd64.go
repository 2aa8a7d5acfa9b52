package ptrace

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// XstateComponent returns where xsave component i (Intel SDM vol. 1, 13.1)
// sits in the standard (uncompacted) layout that NT_X86_XSTATE uses, and its
// size, as CPUID leaf 0xD sub-leaf i reports them for this CPU.
func XstateComponent(i uint32) (off, size uint32) {
	eax, ebx, _, _ := cpuid(0xd, i)
	return ebx, eax
}

// xsave component numbers (Intel SDM vol. 1, 13.1), the bits of XSTATE_BV;
// those CRIU's fpregs entry keeps a field for.
const (
	XfeatFP       = 0
	XfeatSSE      = 1
	XfeatYMM      = 2
	XfeatBNDREGS  = 3
	XfeatBNDCSR   = 4
	XfeatOpmask   = 5
	XfeatZMMHi256 = 6
	XfeatHi16ZMM  = 7
	XfeatPKRU     = 9
)
