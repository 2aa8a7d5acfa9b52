package restore

import "unsafe"

func uintptrOf(p *int) uintptr { return uintptr(unsafe.Pointer(p)) }
