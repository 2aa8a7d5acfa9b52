// Package lazyimg makes the images of a post-copy restore out of a dump
// (gockpt image make-lazy, after crit's make-lazy): a copy of the images
// directory without the pages that may be restored lazily, which a
// lazy-pages daemon serves from the original directory instead.
package lazyimg

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	pb "github.com/gockpt/gockpt/proto"
)

// Summary says what Make did.
type Summary struct {
	Src, Dst           string // the directories as given
	SrcBytes, DstBytes int64  // the sizes of their regular files
	SrcFiles, DstFiles int
	Tasks              int    // task pagemaps rewritten
	LazyPages          uint64 // pages DST leaves to the lazy-pages daemon
	// AlreadyLazy of LazyPages were lazy without data in SRC already.
	AlreadyLazy uint64
	EagerPages  uint64 // task pages whose data DST holds
	ParentPages uint64 // task pages left in the parent images
	// ParentLink is DST's link to the parent images, "" when none.
	ParentLink string
	// Dropped names the pages files of SRC no pagemap names, not copied.
	Dropped []string
	// Skipped names what SRC holds besides files (directories, symlinks
	// other than the parent link), not copied.
	Skipped []string
}

// copyBufSize is the buffer of every copy.
const copyBufSize = 1 << 20

// Make writes into dst, a directory that must not exist or be empty, the
// images of src with every task page marked lazy (PE_LAZY|PE_PRESENT) left
// out: those runs become PE_LAZY alone. Everything else is copied: the
// other task pages into new pages files, shared memory pagemaps and their
// pages as they are, every other file byte for byte, and the parent link
// pointing at the same directory as src's. dst is made beside itself under
// a temporary name and renamed at the end: a failure leaves nothing.
func Make(src, dst string) (*Summary, error) {
	s := &Summary{Src: src, Dst: dst}
	if err := checkSrc(src); err != nil {
		return nil, err
	}
	final, err := checkDst(src, dst)
	if err != nil {
		return nil, err
	}
	// Missing parents are made, 0700 as an images directory's, and
	// removed again if make-lazy fails.
	made := missingParents(filepath.Dir(final))
	ok := false
	defer func() {
		for i := len(made) - 1; i >= 0 && !ok; i-- {
			os.Remove(made[i])
		}
	}()
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return nil, fmt.Errorf("DST: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), "."+filepath.Base(final)+".make-lazy-")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", dst, err)
	}
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	m := &maker{s: s, src: src, final: final, tmp: tmp, buf: make([]byte, copyBufSize)}
	if m.srcDir, err = images.OpenDir(src); err != nil {
		return nil, err
	}
	if m.dst, err = images.OpenDir(tmp); err != nil {
		return nil, err
	}
	if err := m.make(); err != nil {
		return nil, err
	}
	if err := syncTree(tmp); err != nil {
		return nil, fmt.Errorf("%s: %w", dst, err)
	}
	// rename(2) replaces an empty directory; one that got files meanwhile
	// is refused (ENOTEMPTY).
	if err := unix.Rename(tmp, final); err != nil {
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("DST %s got files while the lazy images were made: give a new or empty directory", dst)
		}
		return nil, fmt.Errorf("moving the lazy images into %s: %w", dst, err)
	}
	ok = true
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		d.Sync()
		d.Close()
	}
	return s, nil
}

// checkSrc makes sure src holds the images of a dump.
func checkSrc(src string) error {
	st, err := os.Stat(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("SRC %s does not exist: give the images directory of a dump", src)
		}
		return fmt.Errorf("SRC: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("SRC %s is not a directory: give the images directory of a dump", src)
	}
	d, err := images.OpenDir(src)
	if err != nil {
		return err
	}
	if !d.Exists(images.InventoryFile) {
		return fmt.Errorf("SRC %s holds no inventory.img: it is not an images directory, or its dump did not finish; give the directory of a complete dump", src)
	}
	var inv pb.InventoryEntry
	if err := d.ReadOne(images.InventoryFile, &inv); err != nil {
		return fmt.Errorf("SRC %s: %w", src, err)
	}
	if inv.GetPreDumpMode() != 0 {
		return fmt.Errorf("SRC %s holds a pre-dump (memory only), which cannot be restored: give the final dump's directory", src)
	}
	if !d.Exists(images.PstreeFile) {
		return fmt.Errorf("SRC %s has inventory.img but no pstree.img: the dump is incomplete", src)
	}
	return nil
}

// checkDst refuses a dst that is src or holds anything, and returns the
// path dst will be renamed to: dst itself, or where an existing (empty)
// dst symlink leads.
func checkDst(src, dst string) (string, error) {
	abs, err := filepath.Abs(dst)
	if err != nil {
		return "", fmt.Errorf("DST: %w", err)
	}
	if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) {
		// The existing part of the path, with its symlinks resolved.
		dir, rest := filepath.Dir(abs), filepath.Base(abs)
		for {
			if _, err := os.Lstat(dir); err == nil || dir == filepath.Dir(dir) {
				break
			}
			dir, rest = filepath.Dir(dir), filepath.Join(filepath.Base(dir), rest)
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", fmt.Errorf("DST: %w", err)
		}
		return filepath.Join(real, rest), nil
	} else if err != nil {
		return "", fmt.Errorf("DST: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("DST %s: %w", dst, err)
	}
	sst, err1 := os.Stat(src)
	dstSt, err2 := os.Stat(real)
	if err1 == nil && err2 == nil && os.SameFile(sst, dstSt) {
		return "", fmt.Errorf("DST %s is SRC itself: give a new directory for the lazy images", dst)
	}
	if err2 != nil {
		return "", fmt.Errorf("DST: %w", err2)
	}
	if !dstSt.IsDir() {
		return "", fmt.Errorf("DST %s exists and is not a directory: give a new directory for the lazy images", dst)
	}
	ents, err := os.ReadDir(real)
	if err != nil {
		return "", fmt.Errorf("DST: %w", err)
	}
	if len(ents) > 0 {
		return "", fmt.Errorf("DST %s exists and is not empty (%s): give a new or empty directory for the lazy images", dst, someNames(ents))
	}
	return real, nil
}

// missingParents lists the directories MkdirAll(dir) would make, the
// outermost first.
func missingParents(dir string) []string {
	var made []string
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Lstat(dir); err == nil {
			break
		}
		made = append([]string{dir}, made...)
	}
	return made
}

// someNames names the first few entries of a directory.
func someNames(ents []os.DirEntry) string {
	var names []string
	for i, e := range ents {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(ents)-i))
			break
		}
		names = append(names, e.Name())
	}
	return "holds " + strings.Join(names, ", ")
}

type maker struct {
	s      *Summary
	src    string
	srcDir *images.Dir
	dst    *images.Dir // the temporary directory
	final  string      // where dst goes at the end
	tmp    string      // dst's path until then
	buf    []byte
}

// taskPagemap is a task's pagemap image in src.
type taskPagemap struct {
	name    string
	pid     int
	pagesID uint32
	entries []pagemap.Entry
}

func (m *maker) make() error {
	ents, err := os.ReadDir(m.src)
	if err != nil {
		return fmt.Errorf("SRC: %w", err)
	}
	// DST may be made inside SRC: it is no part of SRC.
	realSrc, err := filepath.EvalSymlinks(m.src)
	if err == nil {
		realSrc, err = filepath.Abs(realSrc)
	}
	if err != nil {
		return fmt.Errorf("SRC: %w", err)
	}
	var (
		tasks   []*taskPagemap
		pages   = map[string]bool{} // pages-N.img files of src
		plain   []string            // copied as they are
		kept    = map[uint32]bool{} // pages IDs of shared memory
		sent    bool                // a page server got the pages
		hasLink bool
	)
	for _, e := range ents {
		name := e.Name()
		if p := filepath.Join(realSrc, name); p == m.final || p == m.tmp {
			continue
		}
		switch {
		case name == images.ParentLink && e.Type()&fs.ModeSymlink != 0:
			hasLink = true
			continue
		case !e.Type().IsRegular():
			what := "a directory"
			if e.Type()&fs.ModeSymlink != 0 {
				what = "a symlink"
			} else if !e.IsDir() {
				what = "not a regular file"
			}
			m.s.Skipped = append(m.s.Skipped, name+" ("+what+")")
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("SRC: %w", err)
		}
		m.s.SrcBytes += fi.Size()
		m.s.SrcFiles++
		var pid int
		var id uint32
		switch {
		case scan(name, "pagemap-%d.img", &pid) && images.PagemapFile(pid) == name:
			t := &taskPagemap{name: name, pid: pid}
			if t.pagesID, t.entries, err = m.parse(name); err != nil {
				return err
			}
			tasks = append(tasks, t)
		case scan(name, "pages-%d.img", &id) && images.PagesFile(id) == name:
			pages[name] = true
		case strings.HasPrefix(name, "pagemap-shmem-") || strings.HasPrefix(name, "pagemap-secretmem-"):
			// Shared memory is restored eagerly: its pagemap and pages
			// go as they are.
			id, _, err := m.parse(name)
			if err != nil {
				return err
			}
			if !m.srcDir.Exists(images.PagesFile(id)) {
				return fmt.Errorf("SRC %s: %s names %s, which is not there: the dump is incomplete", m.src, name, images.PagesFile(id))
			}
			kept[id] = true
			plain = append(plain, name)
		case scan(name, "gockpt-sent-pagemap-%d.img", &pid):
			sent = true
			plain = append(plain, name)
		default:
			plain = append(plain, name)
		}
	}
	switch {
	case len(tasks) == 0 && sent:
		return fmt.Errorf("SRC %s holds no task pagemap: its pages went to a page server; make-lazy the page server's directory, with the other images of this dump copied beside the pagemaps", m.src)
	case len(tasks) == 0:
		return fmt.Errorf("SRC %s holds no task pagemap (pagemap-PID.img): the dump is incomplete", m.src)
	}
	for id := range kept {
		plain = append(plain, images.PagesFile(id))
		delete(pages, images.PagesFile(id))
	}
	if hasLink {
		if err := m.linkParent(); err != nil {
			return err
		}
	}
	for _, name := range plain {
		if err := m.copyFile(name); err != nil {
			return err
		}
	}
	// A task's new pages file keeps its number unless shared memory's
	// uses it (a task pagemap sharing one is not CRIU's, but then the
	// copy must not clash).
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].pid < tasks[j].pid })
	used := map[uint32]bool{}
	next := uint32(0)
	for id := range kept {
		used[id] = true
		next = max(next, id+1)
	}
	for _, t := range tasks {
		next = max(next, t.pagesID+1)
	}
	for _, t := range tasks {
		id := t.pagesID
		if used[id] {
			id = next
			next++
		}
		used[id] = true
		if err := m.checkParents(t); err != nil {
			return err
		}
		if err := m.rewrite(t, id); err != nil {
			return err
		}
		delete(pages, images.PagesFile(t.pagesID))
		m.s.Tasks++
	}
	for name := range pages {
		m.s.Dropped = append(m.s.Dropped, name)
	}
	sort.Strings(m.s.Dropped)
	sort.Strings(m.s.Skipped)
	return m.countDst()
}

func scan(name, format string, v any) bool {
	n, err := fmt.Sscanf(name, format, v)
	return n == 1 && err == nil
}

// parse reads a pagemap image of src.
func (m *maker) parse(name string) (uint32, []pagemap.Entry, error) {
	f, err := m.srcDir.OpenFile(name)
	if err != nil {
		return 0, nil, fmt.Errorf("SRC: %w", err)
	}
	defer f.Close()
	id, entries, err := pagemap.Parse(f, f.Name())
	if err != nil {
		return 0, nil, fmt.Errorf("damaged pagemap: %w: SRC cannot be restored, nor made lazy; dump again", err)
	}
	return id, entries, nil
}

// checkParents makes sure the parent chain holds the runs t leaves there:
// DST, which leaves them there too, would not restore otherwise.
func (m *maker) checkParents(t *taskPagemap) error {
	inParent := false
	for _, e := range t.entries {
		inParent = inParent || e.Flags&pagemap.FlagParent != 0
	}
	if !inParent {
		return nil
	}
	r, err := pagemap.OpenMap(m.srcDir, t.name)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.CheckParents(); err != nil {
		return fmt.Errorf("%w: SRC cannot be restored, nor made lazy", err)
	}
	return nil
}

// rewrite writes t's pagemap into dst: lazy runs lose PE_PRESENT and their
// data; the data of the other present runs goes into pages-ID.img.
func (m *maker) rewrite(t *taskPagemap, id uint32) error {
	var present int64
	for _, e := range t.entries {
		if e.Flags&pagemap.FlagPresent != 0 {
			present += int64(e.NrPages) * pagemap.PageSize
		}
	}
	pagesName := images.PagesFile(t.pagesID)
	var pages *os.File
	if present > 0 {
		var err error
		if pages, err = m.srcDir.OpenFile(pagesName); err != nil {
			return fmt.Errorf("SRC: %s lists %d bytes of pages in %s: %w", t.name, present, pagesName, err)
		}
		defer pages.Close()
		st, err := pages.Stat()
		if err != nil {
			return err
		}
		if st.Size() < present {
			return fmt.Errorf("SRC: %s holds %d bytes but %s lists %d bytes of present pages: the dump is incomplete", pagesName, st.Size(), t.name, present)
		}
	}
	// The runs are written one for one, never merged: a dump keeps the
	// runs of two mappings apart, and so does DST.
	pw, err := m.dst.Create(images.PagesFile(id), images.KindPages)
	if err != nil {
		return err
	}
	out := make([]pagemap.Entry, len(t.entries))
	var off int64
	for i, e := range t.entries {
		size := int64(e.NrPages) * pagemap.PageSize
		at := off
		if e.Flags&pagemap.FlagPresent != 0 {
			off += size
		}
		switch {
		case e.Flags&pagemap.FlagPresent != 0 && e.Flags&pagemap.FlagLazy != 0:
			e.Flags &^= pagemap.FlagPresent
			m.s.LazyPages += e.NrPages
		case e.Flags&pagemap.FlagPresent != 0:
			n, err := io.CopyBuffer(pw, io.NewSectionReader(pages, at, size), m.buf)
			if err == nil && n < size {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				pw.Close()
				return fmt.Errorf("copying the pages of %s from %s: %w", e, pagesName, err)
			}
			m.s.EagerPages += e.NrPages
		case e.Flags&pagemap.FlagParent != 0:
			m.s.ParentPages += e.NrPages
		case e.Flags&pagemap.FlagLazy != 0:
			m.s.LazyPages += e.NrPages
			m.s.AlreadyLazy += e.NrPages
		}
		out[i] = e
	}
	if err := pw.Close(); err != nil {
		return err
	}
	return pagemap.WriteEntries(m.dst, t.pid, id, out)
}

// linkParent makes dst's parent link lead where src's does: relative to
// dst when src's is relative (as CRIU makes them), absolute otherwise.
func (m *maker) linkParent() error {
	link := filepath.Join(m.src, images.ParentLink)
	text, err := os.Readlink(link)
	if err != nil {
		return fmt.Errorf("SRC: %w", err)
	}
	target, err := filepath.EvalSymlinks(link)
	if err == nil {
		var st os.FileInfo
		if st, err = os.Stat(target); err == nil && !st.IsDir() {
			err = errors.New("not a directory")
		}
	}
	if err != nil {
		return fmt.Errorf("SRC %s: the parent link (-> %s) is broken: %v: the pages SRC leaves in the parent images would be lost; fix the link", m.src, text, unwrapPath(err))
	}
	if target, err = filepath.Abs(target); err != nil {
		return err
	}
	to := target
	if !filepath.IsAbs(text) {
		if rel, err := filepath.Rel(m.final, target); err == nil {
			to = rel
		}
	}
	if err := m.dst.LinkParent(to); err != nil {
		return err
	}
	m.s.ParentLink = to
	return nil
}

// unwrapPath drops the path a PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// copyFile copies a file of src into dst, 0600.
func (m *maker) copyFile(name string) error {
	in, err := m.srcDir.OpenFile(name)
	if err != nil {
		return fmt.Errorf("SRC: %w", err)
	}
	defer in.Close()
	out, err := m.dst.CreateFile(name)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, m.buf); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", name, err)
	}
	return out.Close()
}

// countDst counts the files made.
func (m *maker) countDst() error {
	ents, err := os.ReadDir(m.dst.Path())
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		m.s.DstBytes += fi.Size()
		m.s.DstFiles++
	}
	return nil
}

// syncTree flushes the files of dir and dir itself to disk, so that the
// rename never publishes files the disk does not hold yet.
func syncTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "SRC %s: %s in %d files\n", s.Src, exactSize(s.SrcBytes), s.SrcFiles)
	fmt.Fprintf(&b, "DST %s: %s in %d files", s.Dst, exactSize(s.DstBytes), s.DstFiles)
	if s.ParentLink != "" {
		fmt.Fprintf(&b, ", parent -> %s", s.ParentLink)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%d pages (%s) of %s left to be served lazily", s.LazyPages, size(int64(s.LazyPages)*pagemap.PageSize), plural(s.Tasks, "task"))
	if s.AlreadyLazy > 0 {
		fmt.Fprintf(&b, " (%d of them already without data in SRC)", s.AlreadyLazy)
	}
	fmt.Fprintf(&b, "; %d pages restored from DST", s.EagerPages)
	if s.ParentPages > 0 {
		fmt.Fprintf(&b, ", %d from the parent images", s.ParentPages)
	}
	b.WriteString("\n")
	if len(s.Dropped) > 0 {
		fmt.Fprintf(&b, "not copied: %s (no pagemap names it)\n", strings.Join(s.Dropped, ", "))
	}
	if len(s.Skipped) > 0 {
		fmt.Fprintf(&b, "not copied, not files: %s\n", strings.Join(s.Skipped, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// size spells a byte count for people.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	f, u := float64(n)/unit, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if f < unit {
			break
		}
		f, u = f/unit, next
	}
	return fmt.Sprintf("%.1f %s", f, u)
}

// exactSize adds the exact count to size.
func exactSize(n int64) string {
	if n < 1024 {
		return size(n)
	}
	return fmt.Sprintf("%s (%d bytes)", size(n), n)
}
