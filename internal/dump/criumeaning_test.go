package dump

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// TestImagesMeanWhatCRIUMeans checks, on a real dump, the fields CRIU 4.2's
// restore reads in its own sense (test/zdtm's criu-* modes have CRIU restore
// whole trees).
func TestImagesMeanWhatCRIUMeans(t *testing.T) {
	p := startPatterns(t, 1, 1)
	d := dumpLeaveRunning(t, p.Pid)

	var inv pb.InventoryEntry
	if err := d.ReadOne("inventory.img", &inv); err != nil {
		t.Fatal(err)
	}
	var ids pb.TaskKobjIdsEntry
	if err := d.ReadOne(images.IDsFile(p.Pid), &ids); err != nil {
		t.Fatal(err)
	}
	// root_ids are the dumper's: no kernel object shared with the root
	// task (CRIU: "Image corruption on kIDs data"), the same namespaces.
	root := inv.GetRootIds()
	if root == nil {
		t.Fatal("inventory has no root_ids")
	}
	for _, c := range []struct {
		name       string
		task, self uint32
	}{{"vm", ids.GetVmId(), root.GetVmId()}, {"files", ids.GetFilesId(), root.GetFilesId()},
		{"fs", ids.GetFsId(), root.GetFsId()}, {"sighand", ids.GetSighandId(), root.GetSighandId()}} {
		if c.self == 0 || c.self == c.task {
			t.Errorf("root_ids %s_id %d, root task's %d: want another, non-zero id", c.name, c.self, c.task)
		}
	}
	for _, c := range []struct {
		name       string
		task, self uint32
	}{{"pid", ids.GetPidNsId(), root.GetPidNsId()}, {"net", ids.GetNetNsId(), root.GetNetNsId()},
		{"ipc", ids.GetIpcNsId(), root.GetIpcNsId()}, {"uts", ids.GetUtsNsId(), root.GetUtsNsId()},
		{"mnt", ids.GetMntNsId(), root.GetMntNsId()}, {"user", ids.GetUserNsId(), root.GetUserNsId()},
		{"cgroup", ids.GetCgroupNsId(), root.GetCgroupNsId()}, {"time", ids.GetTimeNsId(), root.GetTimeNsId()}} {
		if c.self != c.task || c.self == 0 {
			t.Errorf("root_ids %s_ns_id %d, root task's %d: want the same (gockpt's own namespace)", c.name, c.self, c.task)
		}
	}
	if inv.NetworkLockMethod == nil || inv.GetNetworkLockMethod() != 2 {
		t.Errorf("network_lock_method %v, want 2 (NETWORK_LOCK_SKIP)", inv.NetworkLockMethod)
	}
	if inv.PluginsEntry == nil || len(inv.GetPluginsEntry().GetPlugins()) != 0 {
		t.Errorf("plugins_entry %v, want present and empty (no plugin used)", inv.PluginsEntry)
	}

	// auxv: the pairs without AT_NULL, within CRIU's 44 words.
	var mm pb.MmEntry
	if err := d.ReadOne(images.MMFile(p.Pid), &mm); err != nil {
		t.Fatal(err)
	}
	live, err := proc.ReadAuxv(p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	auxv := mm.GetMmSavedAuxv()
	if len(auxv) > 44 || len(auxv) != len(live)-2 || len(auxv)%2 != 0 {
		t.Errorf("mm_saved_auxv has %d words, /proc auxv %d with AT_NULL: want %d, at most 44", len(auxv), len(live), len(live)-2)
	}
	for i := range auxv {
		if i < len(live) && auxv[i] != live[i] {
			t.Errorf("auxv word %d = %#x, want %#x", i, auxv[i], live[i])
		}
	}

	// Sigactions: 62, without SIGKILL and SIGSTOP.
	var core pb.CoreEntry
	if err := d.ReadOne(images.CoreFile(p.Pid), &core); err != nil {
		t.Fatal(err)
	}
	if n := len(core.GetTc().GetSigactions()); n != 62 {
		t.Errorf("%d sigactions, want 62", n)
	}

	// Files: no mount ids (gockpt writes no mount images).
	fr, err := d.Open("files.img")
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	for {
		f := &pb.FileEntry{}
		if _, err := fr.ReadEntry(f); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if r := f.GetReg(); r != nil && r.GetMntId() != -1 {
			t.Errorf("file %d (%s): mnt_id %d, want -1", f.GetId(), r.GetName(), r.GetMntId())
		}
	}

	// The vDSO's pages are in the images, as the kernel made them: the
	// parking code gockpt left in the live task is not.
	var vdso *pb.VmaEntry
	for _, v := range mm.GetVmas() {
		if v.GetStatus()&images.VMAAreaVDSO != 0 {
			vdso = v
		}
	}
	if vdso == nil {
		t.Fatal("no vDSO VMA in the images")
	}
	if _, there, err := ptrace.ParkingAddr(p.Pid); err != nil || !there {
		t.Fatalf("the dumped task has no parking code in its vDSO (%v): the test proves nothing", err)
	}
	r, err := pagemap.Open(d, p.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dumped := make([]byte, vdso.GetEnd()-vdso.GetStart())
	if err := r.ReadAt(dumped, vdso.GetStart()); err != nil {
		t.Fatalf("vDSO pages: %v", err)
	}
	own, err := ownVDSO()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dumped, own) {
		t.Error("the dumped vDSO differs from the kernel's (this test process's own)")
	}
}

// ownVDSO reads this process's vDSO: the kernel's, untouched.
func ownVDSO() ([]byte, error) {
	areas, err := proc.ReadMaps(os.Getpid())
	if err != nil {
		return nil, err
	}
	for _, a := range areas {
		if a.Kind == proc.KindVDSO {
			b := make([]byte, a.End-a.Start)
			return b, ptrace.ReadMem(os.Getpid(), a.Start, b)
		}
	}
	return nil, os.ErrNotExist
}
