package images

// VMA status bits of vma_entry.status, as CRIU's criu/include/image.h
// numbers them: declared here once for dump, restore and the image tools.
const (
	VMAAreaRegular  = 1 << 0 // an ordinary area, dumped and restored
	VMAAreaStack    = 1 << 1
	VMAAreaVsyscall = 1 << 2
	VMAAreaVDSO     = 1 << 3
	VMAAreaHeap     = 1 << 5
	VMAFilePrivate  = 1 << 6
	VMAFileShared   = 1 << 7
	VMAAnonShared   = 1 << 8
	VMAAnonPrivate  = 1 << 9
	VMAAreaSysVIPC  = 1 << 10
	VMAAreaSocket   = 1 << 11
	VMAAreaVVAR     = 1 << 12
	VMAAreaAIORing  = 1 << 13
	VMAAreaMemfd    = 1 << 14
	VMAAreaShstk    = 1 << 15
	// VMAAreaGuard: not an area but a range of MADV_GUARD_INSTALL guard
	// pages inside one; CRIU lists these after the areas.
	VMAAreaGuard   = 1 << 16
	VMAAreaUprobes = 1 << 17
	VMAUnsupp      = 1 << 31
)
