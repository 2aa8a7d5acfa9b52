package dump

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/mem"
)

// Page hashes let an incremental dump without kernel help skip pages whose
// content equals the parent's. A pre-dump with the hashes tracker leaves
// gockpt-hashes-PID beside pagemap-PID.img: a magic, then one hash per page
// of the pagemap (present and parent runs alike), in its order. A parent
// without that file (a kernel-tracked pre-dump, CRIU's images) is hashed
// from its page data when compared.

// hashMagic starts a page hashes file; the digit is the format version.
const hashMagic = "GOCKPTH1"

// hashSize: SHA-256 cut to 128 bits. A collision would silently restore a
// wrong page, so the hash must be cryptographic; 128 bits keep the chance
// far below that of undetected memory errors.
const hashSize = 16

type pageSum [hashSize]byte

func pageHash(pg []byte) pageSum {
	full := sha256.Sum256(pg)
	var s pageSum
	copy(s[:], full[:hashSize])
	return s
}

// HashFile names a task's page hashes file.
func HashFile(pid int) string { return images.HashFile(pid) }

// pageHashes answers "does the parent hold this content at this address".
type pageHashes struct {
	parent *pagemap.Reader
	sums   []byte  // hashSize per page, in pagemap order; nil: hash the data
	first  []int64 // index of each entry's first page in sums
	buf    []byte
}

// loadHashes prepares comparisons against a task's parent images.
func loadHashes(dir *images.Dir, pid int, parent *pagemap.Reader) (*pageHashes, error) {
	ph := &pageHashes{parent: parent, buf: make([]byte, mem.PageSize)}
	var total int64
	for _, e := range parent.Entries() {
		ph.first = append(ph.first, total)
		total += int64(e.NrPages)
	}
	b, err := os.ReadFile(dir.Join(HashFile(pid)))
	if errors.Is(err, fs.ErrNotExist) {
		return ph, nil
	}
	if err != nil {
		return nil, err
	}
	sums, err := parseHashes(b, total)
	if err != nil {
		// Not trusted, not fatal: compare with the parent's data instead.
		return ph, nil
	}
	ph.sums = sums
	return ph, nil
}

// parseHashes checks a hashes file holding pages hashes.
func parseHashes(b []byte, pages int64) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte(hashMagic)) {
		return nil, fmt.Errorf("no %s magic", hashMagic)
	}
	b = b[len(hashMagic):]
	if pages < 0 || pages > int64(len(b))/hashSize || int64(len(b)) != pages*hashSize {
		return nil, fmt.Errorf("%d bytes of hashes for %d pages", len(b), pages)
	}
	return b, nil
}

// sum returns the parent's hash of the page at addr; false when the parent
// does not hold that page.
func (ph *pageHashes) sum(addr uint64) (pageSum, bool, error) {
	es := ph.parent.Entries()
	i := sort.Search(len(es), func(i int) bool { return es[i].End() > addr })
	if i == len(es) || !es[i].Contains(addr) || es[i].Flags&(pagemap.FlagPresent|pagemap.FlagParent) == 0 {
		return pageSum{}, false, nil
	}
	var s pageSum
	if ph.sums != nil {
		k := (ph.first[i] + int64((addr-es[i].Vaddr)/mem.PageSize)) * hashSize
		copy(s[:], ph.sums[k:k+hashSize])
		return s, true, nil
	}
	if err := ph.parent.ReadAt(ph.buf, addr); err != nil {
		return s, false, err
	}
	return pageHash(ph.buf), true, nil
}

// equal reports whether the parent holds exactly this content at addr.
// A parent that cannot be read counts as different: the page is dumped.
func (ph *pageHashes) equal(addr uint64, s pageSum) bool {
	p, ok, err := ph.sum(addr)
	return err == nil && ok && p == s
}

// hashWriter collects the hashes of a pre-dump's pages in pagemap order.
type hashWriter struct {
	b []byte
}

func newHashWriter() *hashWriter { return &hashWriter{b: []byte(hashMagic)} }

func (h *hashWriter) add(s pageSum) { h.b = append(h.b, s[:]...) }

// fromParent records the parent's hashes for a run left in the parent.
func (h *hashWriter) fromParent(r mem.Range, ph *pageHashes) error {
	for a := r.Start; a < r.End(); a += mem.PageSize {
		if ph == nil {
			return fmt.Errorf("page %#x left in the parent, which has no hashes", a)
		}
		s, ok, err := ph.sum(a)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("page %#x left in the parent, which does not hold it", a)
		}
		h.add(s)
	}
	return nil
}

func (h *hashWriter) write(dir *images.Dir, pid int) error {
	f, err := dir.CreateFile(HashFile(pid))
	if err != nil {
		return err
	}
	if _, err := f.Write(h.b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
