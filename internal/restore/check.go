package restore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	pb "github.com/gockpt/gockpt/proto"
)

// VMA status bits that name a file (CRIU's VMA_FILE_PRIVATE, VMA_FILE_SHARED).
const vmaFileAny = images.VMAFilePrivate | images.VMAFileShared

// MismatchError is a set of images whose files disagree with each other:
// not one checkpoint, but a dump that did not finish or files of two dumps.
type MismatchError struct {
	Dir string
	Msg string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("the images in %s do not agree with each other: %s; they are not one checkpoint (a dump that did not finish, or files of two dumps): dump again into an empty directory", e.Dir, e.Msg)
}

// missingInventory explains a directory without inventory.img.
func missingInventory(d *images.Dir) error {
	ents, err := os.ReadDir(d.Path())
	if err != nil {
		return fmt.Errorf("images directory %s: %w", d.Path(), err)
	}
	n := 0
	for _, e := range ents {
		if images.IsImageName(e.Name()) && e.Name() != images.ParentLink {
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no inventory.img in %s: not a gockpt or CRIU checkpoint", d.Path())
	}
	return fmt.Errorf("no inventory.img in %s: the dump into it did not finish (%d other image files are there); dump again", d.Path(), n)
}

// check makes sure the images agree with each other before any task is
// created: every task and thread has its images, every id names an entry
// that exists, every page is where the pagemaps say, and no per-task image
// belongs to a task the tree does not have. It names the first mismatch.
func (p *Plan) check() error {
	mismatch := func(format string, args ...any) error {
		return &MismatchError{Dir: p.Dir.Path(), Msg: fmt.Sprintf(format, args...)}
	}
	file := func(id uint32) *pb.FileEntry { return p.Files[id] }
	live := false
	for _, t := range p.Tasks {
		live = live || !t.Zombie
	}
	if live && !p.Dir.Exists(images.FilesFile) {
		return mismatch("files.img is missing")
	}
	// The pages of every task are checked at once, a few tasks at a time.
	pageErrs := eachTask(p.Tasks, func(t *Task) error {
		if t.Zombie {
			return nil
		}
		return checkPages(p.Dir, t.Pid)
	})
	for i, t := range p.Tasks {
		if t.Zombie {
			continue
		}
		for _, fd := range t.Fds {
			f := file(fd.GetId())
			if f == nil {
				return mismatch("task %d fd %d: file id %d is not in files.img", t.Pid, fd.GetFd(), fd.GetId())
			}
			if f.GetType() != fd.GetType() {
				return mismatch("task %d fd %d: %s says a %v file, files.img has id %d as %v", t.Pid, fd.GetFd(),
					images.FdinfoFile(t.IDs.GetFilesId()), fd.GetType(), fd.GetId(), f.GetType())
			}
		}
		if id := t.MM.GetExeFileId(); file(id) == nil {
			return mismatch("task %d: its executable, file id %d, is not in files.img", t.Pid, id)
		}
		for _, v := range t.MM.GetVmas() {
			if v.GetStatus()&vmaFileAny != 0 && file(uint32(v.GetShmid())) == nil {
				return mismatch("task %d VMA %#x-%#x: mapped file id %d is not in files.img", t.Pid, v.GetStart(), v.GetEnd(), v.GetShmid())
			}
		}
		for what, id := range map[string]uint32{"working directory": t.FS.GetCwdId(), "root": t.FS.GetRootId()} {
			if file(id) == nil {
				return mismatch("task %d: its %s, file id %d, is not in files.img", t.Pid, what, id)
			}
		}
		if err := pageErrs[i]; err != nil {
			return mismatch("task %d: %v", t.Pid, err)
		}
	}
	if err := files.CheckRemaps(p.Dir, p.Files, p.Remaps); err != nil {
		return mismatch("%v", err)
	}
	for _, f := range p.Files {
		if ff := f.GetFifo(); ff != nil && file(ff.GetRegfId()).GetReg() == nil {
			return mismatch("FIFO file id %d names path entry %d, which is not a regular-file entry of files.img", f.GetId(), ff.GetRegfId())
		}
	}
	if err := p.checkLocks(mismatch); err != nil {
		return err
	}
	return p.checkStray(mismatch)
}

// checkPages opens the task's pagemap and pages (and the parent chain for
// pages left there) and checks they hold every page listed.
func checkPages(d *images.Dir, pid int) error {
	if !d.Exists(images.PagemapFile(pid)) {
		return fmt.Errorf("%s is missing", images.PagemapFile(pid))
	}
	r, err := pagemap.Open(d, pid)
	if err != nil {
		return err
	}
	defer r.Close()
	return r.CheckParents()
}

// perTask are the per-task image names whose number is a PID or a TID.
var perTask = []struct {
	prefix string
	thread bool // numbered by thread, not by task
}{{"core-", true}, {"mm-", false}, {"ids-", false}, {"fs-", false}, {"pagemap-", false}}

// checkStray refuses per-task images of tasks the tree does not have: left
// by another dump, they say the directory mixes two checkpoints.
func (p *Plan) checkStray(mismatch func(string, ...any) error) error {
	tids, pids := map[int]bool{}, map[int]bool{}
	for _, t := range p.Tasks {
		pids[t.Pid] = true
		tids[t.Pid] = true
		for _, tid := range t.Threads {
			tids[tid] = true
		}
	}
	ents, err := os.ReadDir(p.Dir.Path())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		for _, pt := range perTask {
			num, ok := strings.CutPrefix(name, pt.prefix)
			if !ok {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSuffix(num, ".img"))
			if err != nil || !strings.HasSuffix(num, ".img") {
				continue
			}
			if pt.thread && !tids[n] || !pt.thread && !pids[n] {
				return mismatch("%s belongs to no task of pstree.img", name)
			}
		}
	}
	return nil
}
