package images

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

// ExploreViews are the views of `gockpt image x DIR VIEW`, crit's `x`
// explorers: the process tree, each task's fds, its memory mappings, and
// where its dumped pages lie among the mappings.
var ExploreViews = []string{"ps", "fds", "mems", "rss"}

// Explore prints one view of the images directory d, laid out as crit x
// prints it, so that what people know from CRIU reads the same here. It
// reads CRIU's images and gockpt's alike.
func Explore(d *Dir, view string, w io.Writer) error {
	x := &explorer{d: d}
	var print func(*strings.Builder) error
	switch view {
	case "ps":
		print = x.ps
	case "fds":
		print = x.fds
	case "mems":
		print = x.mems
	case "rss":
		print = x.rss
	default:
		return fmt.Errorf("unknown view %q: use one of %s", view, strings.Join(ExploreViews, ", "))
	}
	var b strings.Builder
	if err := print(&b); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// explorer reads the images of one directory for a view, each file once.
type explorer struct {
	d     *Dir
	tasks []*pb.PstreeEntry
	files map[uint32]*pb.FileEntry // files.img, by file id
	// Images of CRIU before files.img (3.x) kept each kind in its own file.
	legacy map[string]map[uint32]proto.Message
	// shmids numbers shared memory and sockets' mappings in the order met,
	// as crit does, instead of printing their kernel ids.
	shmids map[uint64]int
}

func (x *explorer) pstree() ([]*pb.PstreeEntry, error) {
	if x.tasks != nil {
		return x.tasks, nil
	}
	r, err := x.d.Open(PstreeFile)
	if err != nil {
		return nil, x.missing(err, PstreeFile, "")
	}
	defer r.Close()
	for {
		pe := &pb.PstreeEntry{}
		if _, err := r.ReadEntry(pe); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		x.tasks = append(x.tasks, pe)
	}
	return x.tasks, nil
}

// readTask reads the single-entry image name of task pid into m.
func (x *explorer) readTask(pid uint32, name string, m proto.Message) error {
	if err := x.d.ReadOne(name, m); err != nil {
		return x.missing(err, name, fmt.Sprintf("task %d: ", pid))
	}
	return nil
}

// missing words the error for an image a view needs and cannot open, with
// the likely reason when the directory holds a pre-dump.
func (x *explorer) missing(err error, name, prefix string) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s%w", prefix, err)
	}
	msg := fmt.Sprintf("%sno %s in %s", prefix, name, x.d.Path())
	var inv pb.InventoryEntry
	if x.d.ReadOne(InventoryFile, &inv) == nil && inv.GetPreDumpMode() != 0 {
		return errors.New(msg + ": it holds a pre-dump, which saves memory only; look at the final dump's directory")
	}
	if name == PstreeFile {
		return errors.New(msg + ": not a gockpt or CRIU checkpoint")
	}
	return errors.New(msg + ": the dump is incomplete")
}

// file finds the entry of file id in files.img.
func (x *explorer) file(id uint32) (*pb.FileEntry, error) {
	if x.files == nil {
		files, err := readFiles(x.d)
		if err != nil {
			return nil, err
		}
		x.files = files
	}
	return x.files[id], nil
}

// legacyEntry finds id in name, an image of CRIU before files.img, whose
// entries are of type T; nil when the directory has no such image.
func legacyEntry[T any, P interface {
	*T
	proto.Message
	GetId() uint32
}](x *explorer, name string, id uint32) (P, error) {
	if x.legacy == nil {
		x.legacy = map[string]map[uint32]proto.Message{}
	}
	byID, ok := x.legacy[name]
	if !ok {
		byID = map[uint32]proto.Message{}
		x.legacy[name] = byID
		r, err := x.d.Open(name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err == nil {
			defer r.Close()
			for {
				m := P(new(T))
				if _, err := r.ReadEntry(m); err == io.EOF {
					break
				} else if err != nil {
					return nil, err
				}
				byID[m.GetId()] = m
			}
		}
	}
	m, _ := byID[id].(P)
	return m, nil
}

// fileString names the object behind an fd (or a mapping's file) as crit
// x does: the path of a regular file, pipe[ID], unix[INO (PEER) NAME],
// and TYPE.ID for the other kinds.
func (x *explorer) fileString(typ pb.FdTypes, id uint32) (string, error) {
	f, err := x.file(id)
	if err != nil {
		return "", err
	}
	switch typ {
	case pb.FdTypes_REG:
		rf := f.GetReg()
		if f == nil {
			if rf, err = legacyEntry[pb.RegFileEntry](x, "reg-files.img", id); err != nil {
				return "", err
			}
		}
		if rf == nil {
			return "unknown path", nil
		}
		return rf.GetName(), nil
	case pb.FdTypes_PIPE:
		p := f.GetPipe()
		if f == nil {
			if p, err = legacyEntry[pb.PipeEntry](x, "pipes.img", id); err != nil {
				return "", err
			}
		}
		if p == nil {
			return "pipe[?]", nil
		}
		return fmt.Sprintf("pipe[%d]", p.GetPipeId()), nil
	case pb.FdTypes_UNIXSK:
		u := f.GetUsk()
		if f == nil {
			if u, err = legacyEntry[pb.UnixSkEntry](x, "unixsk.img", id); err != nil {
				return "", err
			}
		}
		if u == nil {
			return "unix[?]", nil
		}
		name := ""
		if n := u.GetName(); len(n) > 0 {
			// An abstract name starts with a NUL; ss and lsof show it as @.
			name = " " + strings.ReplaceAll(string(n), "\x00", "@")
		}
		return fmt.Sprintf("unix[%d (%d)%s]", u.GetIno(), u.GetPeer(), name), nil
	}
	return fmt.Sprintf("%s.%d", typ, id), nil
}

// ps prints the process tree: PID, PGID, SID and the command, children
// indented under their parent.
func (x *explorer) ps(b *strings.Builder) error {
	tasks, err := x.pstree()
	if err != nil {
		return err
	}
	comm := map[uint32]string{}
	inTree := map[uint32]bool{}
	kids := map[uint32][]*pb.PstreeEntry{}
	for _, t := range tasks {
		var core pb.CoreEntry
		if err := x.readTask(t.GetPid(), CoreFile(int(t.GetPid())), &core); err != nil {
			return err
		}
		comm[t.GetPid()] = core.GetTc().GetComm()
		inTree[t.GetPid()] = true
	}
	var roots []*pb.PstreeEntry
	for _, t := range tasks {
		if t.GetPpid() == 0 || !inTree[t.GetPpid()] {
			roots = append(roots, t)
		} else {
			kids[t.GetPpid()] = append(kids[t.GetPpid()], t)
		}
	}
	fmt.Fprintf(b, "%7s%7s%7s   %s\n", "PID", "PGID", "SID", "COMM")
	var show func(t *pb.PstreeEntry, depth int)
	show = func(t *pb.PstreeEntry, depth int) {
		fmt.Fprintf(b, "%7d%7d%7d   %s%s\n", t.GetPid(), t.GetPgid(), t.GetSid(), strings.Repeat(" ", 4*depth), comm[t.GetPid()])
		for _, k := range kids[t.GetPid()] {
			show(k, depth+1)
		}
	}
	for _, r := range roots {
		show(r, 0)
	}
	return nil
}

// fds prints each task's open files in fd order, then its cwd and root.
func (x *explorer) fds(b *strings.Builder) error {
	tasks, err := x.pstree()
	if err != nil {
		return err
	}
	for _, t := range tasks {
		pid := t.GetPid()
		filesID, err := x.filesID(pid)
		if err != nil {
			return err
		}
		fds, err := readFdinfo(x.d, filesID)
		if err != nil {
			return fmt.Errorf("task %d: %w", pid, err)
		}
		fmt.Fprintf(b, "%d\n", pid)
		for _, fd := range fds {
			s, err := x.fileString(fd.GetType(), fd.GetId())
			if err != nil {
				return err
			}
			fmt.Fprintf(b, "\t%7d: %s\n", fd.GetFd(), s)
		}
		var fsEntry pb.FsEntry
		if err := x.readTask(pid, FSFile(int(pid)), &fsEntry); err != nil {
			return err
		}
		for _, dir := range []struct {
			name string
			id   uint32
		}{{"cwd", fsEntry.GetCwdId()}, {"root", fsEntry.GetRootId()}} {
			s, err := x.fileString(pb.FdTypes_REG, dir.id)
			if err != nil {
				return err
			}
			fmt.Fprintf(b, "\t%7s: %s\n", dir.name, s)
		}
	}
	return nil
}

// filesID is the id of the fd table of task pid: ids-PID.img, or the ids
// inside its core image.
func (x *explorer) filesID(pid uint32) (uint32, error) {
	var ids pb.TaskKobjIdsEntry
	err := x.d.ReadOne(IDsFile(int(pid)), &ids)
	if err == nil {
		return ids.GetFilesId(), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("task %d: %w", pid, err)
	}
	var core pb.CoreEntry
	if cerr := x.d.ReadOne(CoreFile(int(pid)), &core); cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
		return 0, fmt.Errorf("task %d: %w", pid, cerr)
	}
	if core.GetIds() == nil {
		return 0, x.missing(err, IDsFile(int(pid)), fmt.Sprintf("task %d: ", pid))
	}
	return core.GetIds().GetFilesId(), nil
}

// readFdinfo reads fdinfo-ID.img, sorted by fd number.
func readFdinfo(d *Dir, filesID uint32) ([]*pb.FdinfoEntry, error) {
	r, err := d.Open(FdinfoFile(filesID))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []*pb.FdinfoEntry
	for {
		fe := &pb.FdinfoEntry{}
		if _, err := r.ReadEntry(fe); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		out = append(out, fe)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].GetFd() < out[j].GetFd() })
	return out, nil
}

// MAP_GROWSDOWN, which the views name.
const (
	mapGrowsdown = 0x0100
)

func (x *explorer) mm(pid uint32) (*pb.MmEntry, error) {
	mm := &pb.MmEntry{}
	if err := x.readTask(pid, MMFile(int(pid)), mm); err != nil {
		return nil, err
	}
	return mm, nil
}

// shmid numbers a shared object's id, from 1 in the order met.
func (x *explorer) shmid(id uint64) int {
	if x.shmids == nil {
		x.shmids = map[uint64]int{}
	}
	n, ok := x.shmids[id]
	if !ok {
		n = len(x.shmids) + 1
		x.shmids[id] = n
	}
	return n
}

// mems prints each task's executable and mappings: addresses, protection
// and what is mapped. A trailing * marks a mapping gockpt and CRIU do not
// restore as an ordinary one (VMA_AREA_REGULAR unset).
func (x *explorer) mems(b *strings.Builder) error {
	tasks, err := x.pstree()
	if err != nil {
		return err
	}
	for _, t := range tasks {
		pid := t.GetPid()
		mm, err := x.mm(pid)
		if err != nil {
			return err
		}
		exe, err := x.fileString(pb.FdTypes_REG, mm.GetExeFileId())
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "%d\n", pid)
		fmt.Fprintf(b, "\t%-36s    %s\n", "exe", exe)
		for _, v := range mm.GetVmas() {
			what, err := x.mapped(v)
			if err != nil {
				return err
			}
			if v.GetStatus()&VMAAreaRegular == 0 {
				what += " *"
			}
			fmt.Fprintf(b, "\t%-36s%s%s\n", fmt.Sprintf("%08x-%08x", v.GetStart(), v.GetEnd()), protString(v.GetProt()), what)
		}
	}
	return nil
}

// mapped says what a mapping holds, with a leading space, or "" for
// anonymous private memory. crit's names, plus [heap] and [vvar], which it
// leaves blank.
func (x *explorer) mapped(v *pb.VmaEntry) (string, error) {
	st := v.GetStatus()
	switch {
	case st&VMAAreaSysVIPC != 0:
		return fmt.Sprintf(" ips[%x]", x.shmid(v.GetShmid())), nil
	case st&VMAAnonShared != 0:
		return fmt.Sprintf(" shmem[%x]", x.shmid(v.GetShmid())), nil
	case st&VMAAreaSocket != 0:
		return fmt.Sprintf(" packet[%x]", x.shmid(v.GetShmid())), nil
	case st&(VMAFilePrivate|VMAFileShared) != 0:
		name, err := x.fileString(pb.FdTypes_REG, uint32(v.GetShmid()))
		if err != nil {
			return "", err
		}
		s := " " + name
		if v.GetPgoff() != 0 {
			s += fmt.Sprintf(" + %#x", v.GetPgoff())
		}
		if st&VMAFileShared != 0 {
			s += " (s)"
		}
		return s, nil
	case st&VMAAreaStack != 0:
		return " [stack]", nil
	case st&VMAAreaVsyscall != 0:
		return " [vsyscall]", nil
	case st&VMAAreaVDSO != 0:
		return " [vdso]", nil
	case st&VMAAreaVVAR != 0:
		return " [vvar]", nil
	case st&VMAAreaHeap != 0:
		return " [heap]", nil
	case v.GetFlags()&mapGrowsdown != 0:
		return " [stack?]", nil
	}
	return "", nil
}

// rss prints each task's pagemap entries (address / pages) beside the
// mappings they fall in (start / pages, and the file): a mapping already
// shown for the previous entry is a ~, and one entry spanning several
// mappings lists each on its own line.
func (x *explorer) rss(b *strings.Builder) error {
	tasks, err := x.pstree()
	if err != nil {
		return err
	}
	for _, t := range tasks {
		pid := t.GetPid()
		mm, err := x.mm(pid)
		if err != nil {
			return err
		}
		entries, err := x.pagemap(pid)
		if err != nil {
			return err
		}
		vmas := mm.GetVmas()
		fmt.Fprintf(b, "%d\n", pid)
		vi, shown := 0, -1
		for _, pe := range entries {
			n, _ := PagemapEntryPages(pe)
			start := pe.GetVaddr()
			end := start + n<<12
			for vi < len(vmas) && vmas[vi].GetEnd() <= start {
				vi++
			}
			var cols []string
			for ; vi < len(vmas) && vmas[vi].GetStart() < end; vi++ {
				if vi == shown {
					cols = append(cols, "~")
					continue
				}
				v := vmas[vi]
				col := fmt.Sprintf("%08x / %-8d", v.GetStart(), (v.GetEnd()-v.GetStart())>>12)
				if v.GetStatus()&(VMAFilePrivate|VMAFileShared) != 0 {
					name, err := x.fileString(pb.FdTypes_REG, uint32(v.GetShmid()))
					if err != nil {
						return err
					}
					col += " " + name
				}
				cols = append(cols, col)
				shown = vi
			}
			// The last mapping may hold the next entry too.
			if vi > 0 {
				vi--
			}
			line := fmt.Sprintf("%-23s", fmt.Sprintf("%x / %-8d", start, n))
			if len(cols) == 0 {
				cols = []string{""}
			}
			for i, c := range cols {
				if i > 0 {
					line = strings.Repeat(" ", 23)
				}
				b.WriteString(strings.TrimRight("\t"+line+" "+c, " ") + "\n")
			}
		}
	}
	return nil
}

// pagemap reads the entries of pagemap-PID.img (without its head).
func (x *explorer) pagemap(pid uint32) ([]*pb.PagemapEntry, error) {
	name := PagemapFile(int(pid))
	r, err := x.d.Open(name)
	if err != nil {
		return nil, x.missing(err, name, fmt.Sprintf("task %d: ", pid))
	}
	defer r.Close()
	var out []*pb.PagemapEntry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", pid, err)
		}
		if pe, ok := e.Msg.(*pb.PagemapEntry); ok {
			out = append(out, pe)
		}
	}
}
