package dump

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/testproc"
	pb "github.com/gockpt/gockpt/proto"
)

func pat(i uint64, salt uint64) byte { return byte(i*131 + (i >> 12) + salt) }

type patternsProc struct {
	*testproc.Proc
	dir              string
	anon, heap, fmap uint64
}

func startPatterns(t *testing.T, threads, children int) *patternsProc {
	t.Helper()
	bin := testproc.BuildC(t, "testdata/patterns.c")
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	p := testproc.Start(t, bin, dir, fmt.Sprint(threads), fmt.Sprint(children))
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	b, err := os.ReadFile(filepath.Join(dir, "ready"))
	if err != nil {
		t.Fatal(err)
	}
	pp := &patternsProc{Proc: p, dir: dir}
	if _, err := fmt.Sscanf(string(b), "%x %x %x", &pp.anon, &pp.heap, &pp.fmap); err != nil {
		t.Fatalf("ready file %q: %v", b, err)
	}
	return pp
}

// logLines returns the program's self-check lines.
func (p *patternsProc) logLines(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join(p.dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// expectRunningOK waits for fresh self-checks and fails on any BAD one.
func (p *patternsProc) expectRunningOK(t *testing.T) {
	t.Helper()
	before := len(p.logLines(t))
	deadline := time.Now().Add(5 * time.Second)
	for len(p.logLines(t)) < before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("process %d stopped making progress after the dump", p.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range p.logLines(t) {
		if !strings.HasPrefix(l, "ok ") {
			t.Fatalf("process %d reported %q", p.Pid, l)
		}
	}
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
	if !strings.Contains(string(st), "TracerPid:\t0\n") {
		t.Fatalf("process %d is still traced after the dump", p.Pid)
	}
}

func dumpLeaveRunning(t *testing.T, pid int) *images.Dir {
	t.Helper()
	imgDir := filepath.Join(t.TempDir(), "img")
	st, err := Run(Options{Pid: pid, ImagesDir: imgDir, LeaveRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Tasks == 0 || st.PagesWritten == 0 {
		t.Fatalf("stats %+v", st)
	}
	d, err := images.OpenDir(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDumpPatterns(t *testing.T) {
	p := startPatterns(t, 0, 0)
	mapsBefore, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	d := dumpLeaveRunning(t, p.Pid)
	p.expectRunningOK(t)
	if mapsAfter, _ := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid)); !bytes.Equal(mapsBefore, mapsAfter) {
		t.Errorf("maps changed by the dump:\n%s\n---\n%s", mapsBefore, mapsAfter)
	}

	// Image files are private: 0600 in a 0700 directory.
	if fi, _ := os.Stat(d.Path()); fi.Mode().Perm() != 0o700 {
		t.Errorf("images dir mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(d.Path())
	for _, e := range ents {
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", e.Name(), fi.Mode())
		}
	}

	// Memory: the images hold exactly the patterns.
	r, err := pagemap.Open(d, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check := func(what string, addr, size, salt uint64) {
		buf := make([]byte, size)
		if err := r.ReadAt(buf, addr); err != nil {
			t.Fatalf("%s at %#x: %v", what, addr, err)
		}
		for i := uint64(0); i < size; i++ {
			if buf[i] != pat(i, salt) {
				t.Fatalf("%s byte %d: %#x, want %#x", what, i, buf[i], pat(i, salt))
			}
		}
	}
	check("anonymous memory", p.anon, 4<<20, 1)
	check("heap", p.heap, 1<<20, 2)
	// Written (COW) pages of the private file mapping are in the images;
	// pages still equal to the file are not: restore maps the file.
	for pg := uint64(0); pg < 16; pg++ {
		addr := p.fmap + pg*4096
		_, in := r.Find(addr)
		if pg%2 == 0 {
			if !in {
				t.Fatalf("written page %d of the file mapping is not in the images", pg)
			}
			buf := make([]byte, 4096)
			r.ReadAt(buf, addr)
			for i := range buf {
				if want := pat(pg*4096+uint64(i), 3); buf[i] != want {
					t.Fatalf("file mapping page %d byte %d: %#x want %#x", pg, i, buf[i], want)
				}
			}
		} else if in {
			t.Fatalf("unchanged page %d of the file mapping was dumped", pg)
		}
	}

	// VMAs: every /proc mapping is in mm-PID.img (vvar areas merged).
	var mm pb.MmEntry
	if err := d.ReadOne(images.MMFile(p.Pid), &mm); err != nil {
		t.Fatal(err)
	}
	vmas, err := proc.ParseMaps(bytes.NewReader(mapsBefore))
	if err != nil {
		t.Fatal(err)
	}
	inImage := map[[2]uint64]bool{}
	for _, v := range mm.GetVmas() {
		inImage[[2]uint64{v.GetStart(), v.GetEnd()}] = true
	}
	var stackVMA, execVMAs []proc.VMA
	for _, v := range vmas {
		if v.Kind == proc.KindStack {
			stackVMA = append(stackVMA, v)
		}
		if v.Perms&proc.PermExec != 0 {
			execVMAs = append(execVMAs, v)
		}
		if v.Kind == proc.KindVVAR || v.Kind == proc.KindVVARVClock || v.Kind == proc.KindVSyscall {
			continue
		}
		if !inImage[[2]uint64{v.Start, v.End}] {
			t.Errorf("VMA %s missing from the image", v.String())
		}
	}

	// Registers: the saved ip is in executable code, sp in the stack.
	var core pb.CoreEntry
	if err := d.ReadOne(images.CoreFile(p.Pid), &core); err != nil {
		t.Fatal(err)
	}
	regs := core.GetThreadInfo().GetGpregs()
	inAny := func(addr uint64, vs []proc.VMA) bool {
		for _, v := range vs {
			if addr >= v.Start && addr < v.End {
				return true
			}
		}
		return false
	}
	if !inAny(regs.GetIp(), execVMAs) {
		t.Errorf("saved ip %#x is not in executable memory", regs.GetIp())
	}
	if !inAny(regs.GetSp(), stackVMA) {
		t.Errorf("saved sp %#x is not in the stack", regs.GetSp())
	}
	if core.GetTc().GetComm() != "patterns-0" && !strings.HasPrefix(core.GetTc().GetComm(), "patterns") {
		t.Errorf("comm %q", core.GetTc().GetComm())
	}
	if len(core.GetThreadInfo().GetFpregs().GetXsaveRaw()) < 576 {
		t.Errorf("xsave area of %d bytes", len(core.GetThreadInfo().GetFpregs().GetXsaveRaw()))
	}

	// Files: the log is an open regular file in append mode at its end.
	var fdinfos []*pb.FdinfoEntry
	var ids pb.TaskKobjIdsEntry
	if err := d.ReadOne(images.IDsFile(p.Pid), &ids); err != nil {
		t.Fatal(err)
	}
	rd, err := d.Open(images.FdinfoFile(ids.GetFilesId()))
	if err != nil {
		t.Fatal(err)
	}
	for {
		var e pb.FdinfoEntry
		if _, err := rd.ReadEntry(&e); err != nil {
			break
		}
		fdinfos = append(fdinfos, &e)
	}
	rd.Close()
	if len(fdinfos) < 4 {
		t.Fatalf("only %d fds in the image", len(fdinfos))
	}
	var files []*pb.FileEntry
	fr, err := d.Open("files.img")
	if err != nil {
		t.Fatal(err)
	}
	for {
		var e pb.FileEntry
		if _, err := fr.ReadEntry(&e); err != nil {
			break
		}
		files = append(files, &e)
	}
	fr.Close()
	found := false
	for _, f := range files {
		if f.GetReg().GetName() == filepath.Join(p.dir, "log") {
			found = true
			if f.GetReg().GetFlags()&syscall.O_APPEND == 0 {
				t.Errorf("log file flags %#o lack O_APPEND", f.GetReg().GetFlags())
			}
		}
	}
	if !found {
		t.Errorf("log file not among %d files", len(files))
	}
}

func TestDumpThreadsAndChildren(t *testing.T) {
	p := startPatterns(t, 3, 2)
	d := dumpLeaveRunning(t, p.Pid)
	p.expectRunningOK(t)
	rd, err := d.Open("pstree.img")
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var tasks []*pb.PstreeEntry
	for {
		var e pb.PstreeEntry
		if _, err := rd.ReadEntry(&e); err != nil {
			break
		}
		tasks = append(tasks, &e)
	}
	if len(tasks) != 3 {
		t.Fatalf("pstree has %d tasks, want 3", len(tasks))
	}
	if got := len(tasks[0].GetThreads()); got != 4 {
		t.Fatalf("root has %d threads in the image, want 4", got)
	}
	for _, e := range tasks {
		for _, tid := range e.GetThreads() {
			if !d.Exists(images.CoreFile(int(tid))) {
				t.Errorf("no core image for thread %d", tid)
			}
		}
		if e.GetPid() != uint32(p.Pid) && e.GetPpid() != uint32(p.Pid) {
			t.Errorf("task %d has parent %d, want %d", e.GetPid(), e.GetPpid(), p.Pid)
		}
	}
}

func TestDumpOtherUser(t *testing.T) {
	bin := testproc.BuildC(t, "testdata/patterns.c")
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent is 0700
	os.Chmod(filepath.Dir(bin), 0o755)
	os.Chmod(bin, 0o755)
	cmd := testproc.Command(bin, dir, "0", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	p := testproc.StartCmd(t, cmd)
	testproc.WaitFile(t, filepath.Join(dir, "ready"), 10*time.Second)
	d := dumpLeaveRunning(t, p.Pid)
	var core pb.CoreEntry
	if err := d.ReadOne(images.CoreFile(p.Pid), &core); err != nil {
		t.Fatal(err)
	}
	creds := core.GetThreadCore().GetCreds()
	if creds.GetUid() != 65534 || creds.GetEuid() != 65534 || creds.GetGid() != 65534 {
		t.Errorf("creds %v", creds)
	}
	if n := len(core.GetTc().GetRlimits().GetRlimits()); n != 16 {
		t.Errorf("%d rlimits, want 16", n)
	}
}

// TestDumpLeaveStopped: --leave-stopped leaves every task stopped (T) and
// untraced; SIGCONT lets it go on correctly.
func TestDumpLeaveStopped(t *testing.T) {
	p := startPatterns(t, 1, 1)
	tasks := append(testproc.Descendants(p.Pid), p.Pid)
	if _, err := Run(Options{Pid: p.Pid, ImagesDir: filepath.Join(t.TempDir(), "img"), LeaveStopped: true}); err != nil {
		t.Fatal(err)
	}
	for _, pid := range tasks {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if !strings.Contains(string(st), "State:\tT (stopped)") || !strings.Contains(string(st), "TracerPid:\t0\n") {
			t.Fatalf("task %d after --leave-stopped:\n%s", pid, st)
		}
	}
	for _, pid := range tasks {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	p.expectRunningOK(t)
}
