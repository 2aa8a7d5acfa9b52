package images

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	pb "github.com/gockpt/gockpt/proto"
)

// FileInfo describes one file of an images directory.
type FileInfo struct {
	Name    string
	Kind    string // crit's magic name; "" when not an image
	Entries int    // -1 for raw images and files that are not images
	Size    int64
	Err     error // why the file could not be read as an image
}

// List describes every file of the directory, sorted by name. Files that
// are not images are listed with Err set rather than failing the listing.
func List(d *Dir) ([]FileInfo, error) {
	ents, err := os.ReadDir(d.Path())
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	var out []FileInfo
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		fi := FileInfo{Name: de.Name(), Entries: -1}
		if st, err := de.Info(); err == nil {
			fi.Size = st.Size()
		}
		fi.Kind, fi.Entries, fi.Err = countEntries(d, de.Name())
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// notImages are files gockpt keeps beside the images: logs, the tracker
// state of a pre-dump, page hashes. They are listed, not decoded.
func notImage(name string) bool {
	return strings.HasSuffix(name, ".log") || strings.HasPrefix(name, "gockpt-") || strings.HasSuffix(name, ".pid")
}

func countEntries(d *Dir, name string) (string, int, error) {
	if notImage(name) {
		return "", -1, nil
	}
	r, err := d.Open(name)
	if err != nil {
		return "", -1, err
	}
	defer r.Close()
	k := r.Kind()
	if k.Layout == LayoutRaw || k.Opaque {
		return k.Name, -1, nil
	}
	n := 0
	for {
		if _, err := r.Next(); err == io.EOF {
			return k.Name, n, nil
		} else if err != nil {
			return k.Name, n, err
		}
		n++
	}
}

// WriteList prints List's result as a table.
func WriteList(w io.Writer, files []FileInfo) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "FILE\tMAGIC\tENTRIES\tSIZE\n")
	for _, f := range files {
		kind, n := f.Kind, fmt.Sprint(f.Entries)
		if kind == "" {
			kind = "-"
		}
		if f.Entries < 0 {
			n = "raw"
		}
		if f.Kind == "" && f.Err == nil {
			n = "-"
		}
		if f.Err != nil {
			n = "error: " + f.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", f.Name, kind, n, f.Size)
	}
	return tw.Flush()
}

// Summary is what a dump holds, task by task, for people to read.
type Summary struct {
	Tasks []TaskSummary
}

// TaskSummary describes one task of a dump.
type TaskSummary struct {
	PID, PPID, PGID, SID uint32
	Threads              []uint32
	Comm                 string
	State                string
	VMAs                 []VMASummary
	FDs                  []FDSummary
	Pages                PageCounts
}

// VMASummary is one mapping.
type VMASummary struct {
	Start, End          uint64
	Prot, Flags, Status uint32
	File                string // path of the mapped file, or ""
}

// FDSummary is one open file descriptor.
type FDSummary struct {
	FD   uint32
	Kind string // fd_types name: REG, PIPE, UNIXSK, ...
	Desc string // path, pipe id, socket addresses
}

// PageCounts counts a task's pages by where their data is.
type PageCounts struct {
	Present uint64 // in this directory's pages-N.img
	Parent  uint64 // in a parent directory
	Lazy    uint64 // to be fetched lazily
}

// Describer says what a file entry is, for the kinds of files gockpt
// keeps (files.Describe); "" leaves it to Summarize.
type Describer func(*pb.FileEntry) string

// Summarize reads pstree, core, mm, pagemap, ids, fdinfo and files images.
// Missing per-task images are tolerated (a pre-dump has no core files).
// describe names the files of the kinds gockpt keeps; Summarize names the
// others CRIU writes.
func Summarize(d *Dir, describe Describer) (*Summary, error) {
	s := &Summary{}
	files, err := readFiles(d)
	if err != nil {
		return nil, err
	}
	r, err := d.Open(PstreeFile)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	for {
		var pe pb.PstreeEntry
		if _, err := r.ReadEntry(&pe); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		t := TaskSummary{PID: pe.GetPid(), PPID: pe.GetPpid(), PGID: pe.GetPgid(), SID: pe.GetSid(), Threads: pe.GetThreads()}
		if err := summarizeTask(d, &t, files, describe); err != nil {
			return nil, fmt.Errorf("task %d: %w", t.PID, err)
		}
		s.Tasks = append(s.Tasks, t)
	}
	return s, nil
}

func optional(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func summarizeTask(d *Dir, t *TaskSummary, files map[uint32]*pb.FileEntry, describe Describer) error {
	pid := int(t.PID)
	var core pb.CoreEntry
	filesID := uint32(0)
	haveIDs := false
	if err := d.ReadOne(CoreFile(pid), &core); err == nil {
		t.Comm = core.GetTc().GetComm()
		if st, ok := dictTables["gen"]["task_state"][uint64(core.GetTc().GetTaskState())]; ok {
			t.State = st
		}
		if core.GetIds() != nil {
			filesID, haveIDs = core.GetIds().GetFilesId(), true
		}
	} else if optional(err) != nil {
		return err
	}
	var ids pb.TaskKobjIdsEntry
	if err := d.ReadOne(IDsFile(pid), &ids); err == nil {
		filesID, haveIDs = ids.GetFilesId(), true
	} else if optional(err) != nil {
		return err
	}
	var mm pb.MmEntry
	if err := d.ReadOne(MMFile(pid), &mm); err == nil {
		for _, v := range mm.GetVmas() {
			vs := VMASummary{Start: v.GetStart(), End: v.GetEnd(), Prot: v.GetProt(), Flags: v.GetFlags(), Status: v.GetStatus()}
			// File mappings keep the file's id in shmid.
			if v.GetStatus()&(VMAFilePrivate|VMAFileShared) != 0 {
				if f := files[uint32(v.GetShmid())]; f != nil {
					vs.File = f.GetReg().GetName()
				} else {
					vs.File = fmt.Sprintf("file id %d", v.GetShmid())
				}
			}
			t.VMAs = append(t.VMAs, vs)
		}
	} else if optional(err) != nil {
		return err
	}
	if haveIDs {
		if err := summarizeFDs(d, t, filesID, files, describe); optional(err) != nil {
			return err
		}
	}
	return countPages(d, t)
}

// summarizeFDs lists the task's fds in numeric order, whatever order the
// image holds them in.
func summarizeFDs(d *Dir, t *TaskSummary, filesID uint32, files map[uint32]*pb.FileEntry, describe Describer) error {
	fds, err := readFdinfo(d, filesID)
	if err != nil {
		return err
	}
	for _, fe := range fds {
		t.FDs = append(t.FDs, FDSummary{FD: fe.GetFd(), Kind: fe.GetType().String(), Desc: describeFile(files[fe.GetId()], describe)})
	}
	return nil
}

// describeFile names a file entry: by describe for the kinds gockpt
// keeps, here for the others CRIU writes.
func describeFile(f *pb.FileEntry, describe Describer) string {
	if f == nil {
		return "(not in files.img)"
	}
	if describe != nil {
		if s := describe(f); s != "" {
			return s
		}
	}
	switch {
	case f.GetUsk() != nil:
		u := f.GetUsk()
		name := strings.ReplaceAll(string(u.GetName()), "\x00", "@")
		return fmt.Sprintf("unix %s ino %d peer %d %q", dictTables["sk"]["type"][uint64(u.GetType())], u.GetIno(), u.GetPeer(), name)
	case f.GetIsk() != nil:
		s := f.GetIsk()
		return fmt.Sprintf("%s %s %s:%d -> %s:%d %s", dictTables["sk"]["family"][uint64(s.GetFamily())],
			dictTables["sk"]["proto"][uint64(s.GetProto())], wordsIP(s.GetSrcAddr()), s.GetSrcPort(),
			wordsIP(s.GetDstAddr()), s.GetDstPort(), dictTables["sk"]["state"][uint64(s.GetState())])
	case f.GetTty() != nil:
		return fmt.Sprintf("tty info %d", f.GetTty().GetTtyInfoId())
	case f.GetMemfd() != nil:
		return fmt.Sprintf("memfd inode %d", f.GetMemfd().GetInodeId())
	case f.GetTfd() != nil:
		return fmt.Sprintf("timerfd clock %d", f.GetTfd().GetClockid())
	case f.GetSgfd() != nil:
		return fmt.Sprintf("signalfd mask %#x", f.GetSgfd().GetSigmask())
	case f.GetIfy() != nil:
		return fmt.Sprintf("inotify, %d watches", len(f.GetIfy().GetWd()))
	case f.GetFfy() != nil:
		return fmt.Sprintf("fanotify, %d marks", len(f.GetFfy().GetMark()))
	}
	return ""
}

func wordsIP(w []uint32) string {
	if len(w) != 1 && len(w) != 4 {
		return "?"
	}
	return ipString(w)
}

func readFiles(d *Dir) (map[uint32]*pb.FileEntry, error) {
	files := map[uint32]*pb.FileEntry{}
	r, err := d.Open(FilesFile)
	if err != nil {
		if optional(err) == nil {
			return files, nil
		}
		return nil, err
	}
	defer r.Close()
	for {
		f := &pb.FileEntry{}
		if _, err := r.ReadEntry(f); err == io.EOF {
			return files, nil
		} else if err != nil {
			return nil, err
		}
		files[f.GetId()] = f
	}
}

func countPages(d *Dir, t *TaskSummary) error {
	r, err := d.Open(PagemapFile(int(t.PID)))
	if err != nil {
		return optional(err)
	}
	defer r.Close()
	for {
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		pe, ok := e.Msg.(*pb.PagemapEntry)
		if !ok {
			continue // the head
		}
		n, flags := PagemapEntryPages(pe)
		switch {
		case flags&1 != 0:
			t.Pages.Parent += n
		case flags&4 != 0:
			t.Pages.Present += n
		case flags&2 != 0:
			t.Pages.Lazy += n
		}
	}
}

// PagemapEntryPages returns an entry's page count and flags, filling in
// what older CRIU images leave out (nr_pages, flags) the way CRIU does.
func PagemapEntryPages(pe *pb.PagemapEntry) (nrPages uint64, flags uint32) {
	nrPages = pe.GetNrPages()
	if pe.NrPages == nil {
		nrPages = uint64(pe.GetCompatNrPages())
	}
	flags = pe.GetFlags()
	if pe.GetInParent() {
		flags |= 1
	} else if pe.Flags == nil {
		flags = 4
	}
	return nrPages, flags
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	for i, t := range s.Tasks {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "task %d (%s) ppid %d pgid %d sid %d", t.PID, t.Comm, t.PPID, t.PGID, t.SID)
		if t.State != "" {
			fmt.Fprintf(&b, " %s", t.State)
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "  threads: %s\n", joinUint(t.Threads))
		fmt.Fprintf(&b, "  pages: %d present, %d in parent, %d lazy\n", t.Pages.Present, t.Pages.Parent, t.Pages.Lazy)
		fmt.Fprintf(&b, "  vmas: %d\n", len(t.VMAs))
		for _, v := range t.VMAs {
			fmt.Fprintf(&b, "    %016x-%016x %s %7dK %s  %s", v.Start, v.End, protString(v.Prot), (v.End-v.Start)>>10,
				FlagString("mmap.flags", uint64(v.Flags)), FlagString("mmap.status", uint64(v.Status)))
			if v.File != "" {
				fmt.Fprintf(&b, "  %s", v.File)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "  fds: %d\n", len(t.FDs))
		for _, f := range t.FDs {
			fmt.Fprintf(&b, "    %3d %-8s %s\n", f.FD, f.Kind, f.Desc)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func protString(p uint32) string {
	s := []byte("---")
	for i, c := range "rwx" {
		if p&(1<<i) != 0 {
			s[i] = byte(c)
		}
	}
	return string(s)
}

func joinUint(v []uint32) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, " ")
}
