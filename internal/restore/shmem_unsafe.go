package restore

import "unsafe"

// sliceAddr is the address of b's first byte, for naming an area of
// gockpt's own memory (/proc/self/map_files).
func sliceAddr(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }
