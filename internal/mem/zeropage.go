package mem

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ZeroPFN returns the page frame number of the kernel's shared zero page,
// which a read fault maps into a never-written private anonymous page. It is
// learnt once, from a page of our own; an error is remembered too.
func ZeroPFN() (uint64, error) { return zeroPFNOnce() }

var zeroPFNOnce = sync.OnceValues(findZeroPFN)

// findZeroPFN reads a fresh anonymous page, which maps the zero page, and
// looks up its PFN in our own pagemap.
func findZeroPFN() (uint64, error) {
	b, err := unix.Mmap(-1, 0, PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("find the zero page: mmap: %w", err)
	}
	defer unix.Munmap(b)
	if b[0] != 0 { // the read that maps the zero page, kept by the test
		return 0, errors.New("find the zero page: a fresh anonymous page does not read 0")
	}
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		return 0, fmt.Errorf("find the zero page: %w", err)
	}
	defer pm.Close()
	addr := addrOf(b)
	es, err := pm.Entries(addr, addr+PageSize)
	if err != nil {
		return 0, fmt.Errorf("find the zero page: %w", err)
	}
	switch e := es[0]; {
	case e&pmPresent == 0:
		return 0, fmt.Errorf("find the zero page: page %#x read but not present (pagemap entry %#x)", addr, e)
	case PFN(e) == 0:
		return 0, errors.New("find the zero page: /proc/self/pagemap hides PFNs (needs CAP_SYS_ADMIN)")
	default:
		return PFN(e), nil
	}
}

// DataPages is AnonPages without present pages that map the zero page at
// zeroPFN (when not 0): they hold only zeros, and restore starts from zeros.
// The huge zero page has other PFNs and is not recognised.
func DataPages(privateFile bool, zeroPFN uint64) Selector {
	anon := AnonPages(privateFile)
	if zeroPFN == 0 {
		return anon
	}
	return func(e uint64) bool {
		return anon(e) && !(e&pmPresent != 0 && PFN(e) == zeroPFN)
	}
}
