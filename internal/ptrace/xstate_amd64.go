package ptrace

import "sync"

func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// XstateComponent returns where xsave component i (Intel SDM vol. 1, 13.1)
// sits in the standard (uncompacted) layout that NT_X86_XSTATE uses, and its
// size, as CPUID leaf 0xD sub-leaf i reports them for this CPU.
func XstateComponent(i uint32) (off, size uint32) {
	if i >= uint32(len(xstateComponents)) {
		eax, ebx, _, _ := cpuid(0xd, i)
		return ebx, eax
	}
	// Asked once: cpuid traps to the hypervisor in a VM, and a dump asks
	// for every thread (5% of a 1,024-thread dump).
	xstateOnce.Do(func() {
		for j := range xstateComponents {
			eax, ebx, _, _ := cpuid(0xd, uint32(j))
			xstateComponents[j] = [2]uint32{ebx, eax}
		}
	})
	c := xstateComponents[i]
	return c[0], c[1]
}

var (
	xstateOnce       sync.Once
	xstateComponents [20][2]uint32 // offset, size of components 0 to 19
)

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
