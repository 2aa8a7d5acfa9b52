package images

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"
)

// ParentLink is the symlink an incremental dump leaves to the directory of
// the previous (pre-)dump, as CRIU does.
const ParentLink = "parent"

// Dir is an images directory.
type Dir struct {
	path string

	mu sync.Mutex
	// written names the files created since BeginWrite; nil when the
	// directory is not being written.
	written map[string]bool
	// pagesElsewhere: the pages of this dump go to a page server, which
	// may write them into this directory itself.
	pagesElsewhere bool
}

// pageImage tells whether name is a pagemap or pages image.
func pageImage(name string) bool {
	return matchName("pagemap-%d.img", name) || matchName("pagemap-shmem-%d.img", name) || matchName("pages-%d.img", name)
}

// PagesElsewhere says that this dump's pages go to a page server: the
// pagemap and pages images of an earlier dump are removed now, before the
// server could write any here, and RemoveStale leaves those it finds
// later (the server's).
func (d *Dir) PagesElsewhere() ([]string, error) {
	d.pagesElsewhere = true
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("images directory %s: %w", d.path, err)
	}
	var removed []string
	for _, e := range ents {
		if e.IsDir() || !pageImage(e.Name()) {
			continue
		}
		if err := os.Remove(d.Join(e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("images directory %s: removing %s of an earlier dump: %w", d.path, e.Name(), err)
		}
		removed = append(removed, e.Name())
	}
	return removed, nil
}

// OpenDir opens an existing images directory for reading.
func OpenDir(path string) (*Dir, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("images directory %s does not exist: check -D", path)
		}
		return nil, fmt.Errorf("images directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("images directory %s is not a directory: check -D", path)
	}
	return &Dir{path: path}, nil
}

// BeginWrite starts writing a new set of images: inventory.img goes first,
// so that until it is written again, last, the directory is never taken
// for a whole checkpoint (a dump that fails or is killed midway leaves none).
// From here on every file created is remembered for RemoveStale.
func (d *Dir) BeginWrite() error {
	if err := os.Remove(d.Join(InventoryFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("images directory %s: removing the old inventory.img: %w", d.path, err)
	}
	d.mu.Lock()
	d.written = map[string]bool{}
	d.mu.Unlock()
	return nil
}

func (d *Dir) noteWritten(name string) {
	d.mu.Lock()
	if d.written != nil {
		d.written[name] = true
	}
	d.mu.Unlock()
}

// RemoveStale removes the image files of an earlier dump that this one
// (since BeginWrite) did not write, so that none of them can be taken for
// part of this checkpoint. Only image names gockpt and CRIU use are
// considered (IsImageName); logs and anything else stay. It returns the
// names removed, sorted.
func (d *Dir) RemoveStale() ([]string, error) {
	d.mu.Lock()
	written := d.written
	d.mu.Unlock()
	if written == nil {
		return nil, fmt.Errorf("images directory %s: RemoveStale without BeginWrite", d.path)
	}
	ents, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("images directory %s: %w", d.path, err)
	}
	var removed []string
	for _, e := range ents {
		name := e.Name()
		if written[name] || e.IsDir() || !IsImageName(name) || (d.pagesElsewhere && pageImage(name)) {
			continue
		}
		if err := os.Remove(d.Join(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("images directory %s: removing %s of an earlier dump: %w", d.path, name, err)
		}
		removed = append(removed, name)
	}
	sort.Strings(removed)
	return removed, nil
}

// CreateDir opens an images directory for writing, creating it (and missing
// parents) with mode 0700 when it does not exist: images hold process
// memory. An existing directory keeps its mode.
func CreateDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("creating images directory: %w", err)
	}
	return OpenDir(path)
}

// Path returns the directory's path as given.
func (d *Dir) Path() string { return d.path }

// RealPath returns the directory's absolute path with symlinks resolved,
// which identifies it.
func (d *Dir) RealPath() (string, error) {
	p, err := filepath.EvalSymlinks(d.path)
	if err != nil {
		return "", fmt.Errorf("images directory: %w", err)
	}
	return filepath.Abs(p)
}

// Join returns the path of the file name inside the directory.
func (d *Dir) Join(name string) string { return filepath.Join(d.path, name) }

// Exists tells whether the directory holds a file called name.
func (d *Dir) Exists(name string) bool {
	_, err := os.Lstat(d.Join(name))
	return err == nil
}

// Open opens an image file and reads its magic.
func (d *Dir) Open(name string) (*Reader, error) {
	f, err := os.Open(d.Join(name))
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	r, err := NewReader(f, f.Name())
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// OpenFile opens a file of the directory without reading anything, for
// random access to raw images (pages-N.img).
func (d *Dir) OpenFile(name string) (*os.File, error) {
	f, err := os.Open(d.Join(name))
	if err != nil {
		return nil, fmt.Errorf("opening image: %w", err)
	}
	return f, nil
}

// CreateFile creates (or truncates) a file of the directory with mode 0600.
// An existing file is reused, not refused: a retried dump overwrites.
func (d *Dir) CreateFile(name string) (*os.File, error) {
	f, err := os.OpenFile(d.Join(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating image: %w", err)
	}
	d.noteWritten(name)
	// O_TRUNC keeps the mode of a file that already existed.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("creating image: %w", err)
	}
	return f, nil
}

// Create creates the image file name of kind k and writes its magic.
func (d *Dir) Create(name string, k *Kind) (*Writer, error) {
	f, err := d.CreateFile(name)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f, f.Name(), k)
	if err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// WriteOne creates the image file name holding the single entry m.
func (d *Dir) WriteOne(name string, k *Kind, m proto.Message) error {
	w, err := d.Create(name, k)
	if err != nil {
		return err
	}
	if err := w.WriteEntry(m); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// WriteSmall creates the image file name holding the single entry m and,
// after it, the bytes of extra (a TCP stream's queues), in one write: for
// the many small images of one kind (a TCP stream per connection), it
// spares a writer's buffer and the syscalls of several writes.
func (d *Dir) WriteSmall(name string, k *Kind, m proto.Message, extra ...[]byte) error {
	var buf bytes.Buffer
	w, err := NewWriter(&smallWriter{&buf}, name, k)
	if err != nil {
		return err
	}
	if err := w.WriteEntry(m); err != nil {
		return err
	}
	for _, b := range extra {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f, err := d.CreateFile(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	return f.Close()
}

// smallWriter hides a buffer's ReadFrom and the like from bufio; NewWriter
// sizes its buffer for files, which WriteSmall does not need: writes go
// through at once.
type smallWriter struct{ b *bytes.Buffer }

func (s *smallWriter) Write(p []byte) (int, error) { return s.b.Write(p) }

// ReadOne reads the image file name, which must hold exactly one entry, into m.
func (d *Dir) ReadOne(name string, m proto.Message) error {
	r, err := d.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ReadOne(m)
}

// Parent returns the directory the parent link points to, or nil when this
// directory has none (a full dump).
func (d *Dir) Parent() (*Dir, error) {
	link := d.Join(ParentLink)
	if _, err := os.Lstat(link); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("images directory %s: %w", d.path, err)
	}
	// The link is relative to the directory it lives in, as CRIU makes it;
	// resolving it keeps paths short and makes loops visible.
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		return nil, fmt.Errorf("images directory %s: parent link: %w", d.path, err)
	}
	p, err := OpenDir(target)
	if err != nil {
		return nil, fmt.Errorf("images directory %s: parent link: %w", d.path, err)
	}
	return p, nil
}

// LinkParent makes parent (usually "../PREV", relative to this directory)
// the parent of this directory's images, replacing an older link.
func (d *Dir) LinkParent(parent string) error {
	link := d.Join(ParentLink)
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replacing parent link: %w", err)
	}
	if err := os.Symlink(parent, link); err != nil {
		return fmt.Errorf("linking parent images: %w", err)
	}
	d.noteWritten(ParentLink)
	return nil
}

// Image file names, as CRIU spells them.
const (
	InventoryFile  = "inventory.img"
	PstreeFile     = "pstree.img"
	FilesFile      = "files.img"
	SeccompFile    = "seccomp.img"
	StatsDumpFile  = "stats-dump"
	PipesDataFile  = "pipes-data.img"
	FifoDataFile   = "fifo-data.img"
	SkQueuesFile   = "sk-queues.img"
	TtyInfoFile    = "tty-info.img"
	RemapFpathFile = "remap-fpath.img"
	// FileLocksFile holds the file locks of the whole tree (CRIU names it
	// filelocks, without a dash).
	FileLocksFile = "filelocks.img"
	MemfdFile     = "memfd.img" // the memfd inodes (MEMFD_INODE)
)

// CoreFile and the functions below name per-task and per-object images.
func CoreFile(tid int) string    { return fmt.Sprintf("core-%d.img", tid) }
func MMFile(pid int) string      { return fmt.Sprintf("mm-%d.img", pid) }
func IDsFile(pid int) string     { return fmt.Sprintf("ids-%d.img", pid) }
func FSFile(pid int) string      { return fmt.Sprintf("fs-%d.img", pid) }
func PagemapFile(pid int) string { return fmt.Sprintf("pagemap-%d.img", pid) }
func PagesFile(id uint32) string { return fmt.Sprintf("pages-%d.img", id) }

// ShmemPagemapFile is the pagemap of shared anonymous object shmid.
func ShmemPagemapFile(shmid uint64) string { return fmt.Sprintf("pagemap-shmem-%d.img", shmid) }
func FdinfoFile(filesID uint32) string     { return fmt.Sprintf("fdinfo-%d.img", filesID) }
func TimensFile(id uint32) string          { return fmt.Sprintf("timens-%d.img", id) }
func UtsnsFile(id uint32) string           { return fmt.Sprintf("utsns-%d.img", id) }
func GhostFile(id uint32) string           { return fmt.Sprintf("ghost-file-%x.img", id) }
