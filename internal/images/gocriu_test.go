package images_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/checkpoint-restore/go-criu/v8/crit"
	criucore "github.com/checkpoint-restore/go-criu/v8/crit/images/criu-core"
	criuinv "github.com/checkpoint-restore/go-criu/v8/crit/images/inventory"
	criumm "github.com/checkpoint-restore/go-criu/v8/crit/images/mm"
	criupagemap "github.com/checkpoint-restore/go-criu/v8/crit/images/pagemap"
	criupstree "github.com/checkpoint-restore/go-criu/v8/crit/images/pstree"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	pb "github.com/gockpt/gockpt/proto"
)

// What gockpt writes, go-criu's crit (the library runc and checkpointctl
// use) must read, field for field.
func TestGoCriuReadsOurImages(t *testing.T) {
	d, err := images.CreateDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const pid = 4242
	u32 := proto.Uint32
	u64 := proto.Uint64
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.WriteOne(images.InventoryFile, images.KindInventory, &pb.InventoryEntry{
		ImgVersion: u32(2), FdinfoPerId: proto.Bool(true), NsPerId: proto.Bool(true),
		RootIds: &pb.TaskKobjIdsEntry{VmId: u32(1), FilesId: u32(2), FsId: u32(3), SighandId: u32(4)},
		Lsmtype: pb.Lsmtype_SELINUX.Enum(), DumpUptime: u64(123456789)}))
	must(d.WriteOne(images.PstreeFile, images.KindPstree, &pb.PstreeEntry{
		Pid: u32(pid), Ppid: u32(0), Pgid: u32(pid), Sid: u32(1), Threads: []uint32{pid, pid + 1}}))
	regs := &pb.UserX86RegsEntry{}
	for i, f := range []**uint64{&regs.R15, &regs.R14, &regs.R13, &regs.R12, &regs.Bp, &regs.Bx, &regs.R11, &regs.R10,
		&regs.R9, &regs.R8, &regs.Ax, &regs.Cx, &regs.Dx, &regs.Si, &regs.Di, &regs.OrigAx, &regs.Ip, &regs.Cs,
		&regs.Flags, &regs.Sp, &regs.Ss, &regs.FsBase, &regs.GsBase, &regs.Ds, &regs.Es, &regs.Fs, &regs.Gs} {
		*f = u64(uint64(i) * 0x1111)
	}
	core := &pb.CoreEntry{
		Mtype: pb.CoreEntry_X86_64.Enum(),
		ThreadInfo: &pb.ThreadInfoX86{ClearTidAddr: u64(0x7f0000001000), Gpregs: regs,
			Fpregs: &pb.UserX86FpregsEntry{Cwd: u32(0x37f), Swd: u32(0), Twd: u32(0), Fop: u32(0), Rip: u64(0), Rdp: u64(0),
				Mxcsr: u32(0x1f80), MxcsrMask: u32(0xffff), StSpace: make([]uint32, 32), XmmSpace: make([]uint32, 64)}},
		Tc: &pb.TaskCoreEntry{TaskState: u32(images.TaskAlive), ExitCode: u32(0), Personality: u32(0), Flags: u32(0x400100),
			BlkSigset: u64(0), Comm: proto.String("counter"),
			Rlimits: &pb.TaskRlimitsEntry{Rlimits: []*pb.RlimitEntry{{Cur: u64(1024), Max: u64(4096)}}}},
		ThreadCore: &pb.ThreadCoreEntry{FutexRla: u64(0), FutexRlaLen: u32(24), SchedNice: proto.Int32(-5),
			Creds: &pb.CredsEntry{Uid: u32(1000), Gid: u32(1000), Euid: u32(1000), Egid: u32(1000), Suid: u32(1000),
				Sgid: u32(1000), Fsuid: u32(1000), Fsgid: u32(1000), Secbits: u32(0), CapEff: []uint32{1, 2}}},
	}
	must(d.WriteOne(images.CoreFile(pid), images.KindCore, core))
	mm := &pb.MmEntry{MmStartCode: u64(0x400000), MmEndCode: u64(0x401000), MmStartData: u64(0x600000),
		MmEndData: u64(0x601000), MmStartStack: u64(0x7ffd0000), MmStartBrk: u64(0x700000), MmBrk: u64(0x721000),
		MmArgStart: u64(1), MmArgEnd: u64(2), MmEnvStart: u64(3), MmEnvEnd: u64(4), ExeFileId: u32(1),
		Vmas: []*pb.VmaEntry{{Start: u64(0x10000), End: u64(0x14000), Pgoff: u64(0), Shmid: u64(0),
			Prot: u32(3), Flags: u32(0x22), Status: u32(0x201), Fd: proto.Int64(-1)}}}
	must(d.WriteOne(images.MMFile(pid), images.KindMM, mm))
	pw, err := pagemap.Create(d, pid, 1)
	must(err)
	data := make([]byte, 3*pagemap.PageSize)
	for i := range data {
		data[i] = byte(i * 7)
	}
	must(pw.Add(pagemap.Entry{Vaddr: 0x10000, NrPages: 2, Flags: pagemap.FlagPresent}, data[:2*pagemap.PageSize]))
	must(pw.Add(pagemap.Entry{Vaddr: 0x13000, NrPages: 1, Flags: pagemap.FlagPresent | pagemap.FlagLazy}, data[2*pagemap.PageSize:]))
	must(pw.Close())

	decode := func(name string, m proto.Message) *crit.CriuImage {
		t.Helper()
		f, err := os.Open(d.Join(name))
		must(err)
		defer f.Close()
		img, err := crit.New(f, nil, "", false, false).Decode(m)
		if err != nil {
			t.Fatalf("go-criu cannot decode %s: %v", name, err)
		}
		return img
	}
	// Each message must mean the same to go-criu: compare the wire bytes of
	// go-criu's view with ours.
	same := func(name string, ours proto.Message, theirs proto.Message) {
		t.Helper()
		a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(ours)
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(theirs)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: go-criu read %v", name, theirs)
		}
	}
	inv := decode(images.InventoryFile, &criuinv.InventoryEntry{})
	if inv.Magic != "INVENTORY" || inv.Entries[0].Message.(*criuinv.InventoryEntry).GetRootIds().GetFsId() != 3 {
		t.Errorf("inventory: %s %v", inv.Magic, inv.Entries[0].Message)
	}
	ps := decode(images.PstreeFile, &criupstree.PstreeEntry{})
	if ps.Magic != "PSTREE" || ps.Entries[0].Message.(*criupstree.PstreeEntry).GetThreads()[1] != pid+1 {
		t.Errorf("pstree: %s %v", ps.Magic, ps.Entries[0].Message)
	}
	c := decode(images.CoreFile(pid), &criucore.CoreEntry{})
	cm := c.Entries[0].Message.(*criucore.CoreEntry)
	if c.Magic != "CORE" || cm.GetTc().GetComm() != "counter" || cm.GetThreadInfo().GetGpregs().GetIp() != 16*0x1111 ||
		cm.GetThreadCore().GetSchedNice() != -5 || cm.GetThreadCore().GetCreds().GetUid() != 1000 {
		t.Errorf("core: %s %v", c.Magic, cm)
	}
	same("core", core, cm)
	m := decode(images.MMFile(pid), &criumm.MmEntry{})
	if m.Magic != "MM" || m.Entries[0].Message.(*criumm.MmEntry).GetVmas()[0].GetEnd() != 0x14000 {
		t.Errorf("mm: %s %v", m.Magic, m.Entries[0].Message)
	}
	same("mm", mm, m.Entries[0].Message)
	p := decode(images.PagemapFile(pid), &criupagemap.PagemapEntry{})
	if p.Magic != "PAGEMAP" || len(p.Entries) != 3 ||
		p.Entries[0].Message.(*criupagemap.PagemapHead).GetPagesId() != 1 ||
		p.Entries[2].Message.(*criupagemap.PagemapEntry).GetVaddr() != 0x13000 ||
		p.Entries[2].Message.(*criupagemap.PagemapEntry).GetFlags() != 6 {
		t.Errorf("pagemap: %s %v", p.Magic, p.Entries)
	}

	// go-criu's page reader finds the same bytes ours does.
	mr, err := crit.NewMemoryReader(d.Path(), pid, pagemap.PageSize)
	must(err)
	got, err := mr.GetMemPages(0x10000, 0x14000)
	must(err)
	want := append(append([]byte{}, data[:2*pagemap.PageSize]...), make([]byte, pagemap.PageSize)...)
	want = append(want, data[2*pagemap.PageSize:]...)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("go-criu reads different page data (%d bytes)", got.Len())
	}

	// And its process-tree explorer understands the directory.
	tree, err := crit.New(nil, nil, d.Path(), false, false).ExplorePs()
	must(err)
	if tree.PID != pid || tree.Comm != "counter" {
		t.Errorf("go-criu ExplorePs: %+v", tree)
	}
}
