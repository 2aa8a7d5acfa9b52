package dump

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/kcmp"
	"github.com/gockpt/gockpt/internal/log"
	pb "github.com/gockpt/gockpt/proto"
)

// imgVersion is CRIU's CRTOOLS_IMAGES_V1_1.
const imgVersion = 2

// kobjIDs numbers the kernel objects tasks may share (mm, fd table, fs,
// signal handlers, namespaces): tasks sharing one get the same id.
type kobjIDs struct {
	next uint32
	// seen holds, per kcmp type, the objects numbered so far.
	seen  map[int]*kcmp.Set[uint32]
	nsIDs map[string]uint32
	// newUTS are the UTS namespaces other than gockpt's, by id, for
	// utsns-ID.img.
	newUTS map[uint32]*pb.UtsnsEntry
}

func (k *kobjIDs) id() uint32 {
	k.next++
	return k.next
}

// shared returns the id of kernel object typ of task pid: an earlier
// task's, if kcmp says they share it, or a new one.
func (k *kobjIDs) shared(pid int, typ int) uint32 {
	if k.seen == nil {
		k.seen = map[int]*kcmp.Set[uint32]{}
	}
	set := k.seen[typ]
	if set == nil {
		set = &kcmp.Set[uint32]{Type: typ}
		k.seen[typ] = set
	}
	if id, ok := set.Find(pid, 0); ok {
		return id
	}
	id := k.id()
	set.Add(pid, 0, id)
	return id
}

func (k *kobjIDs) ns(pid int, name string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", pid, name), &st); err != nil {
		return 0, fmt.Errorf("task %d: %s namespace: %w", pid, name, err)
	}
	if k.nsIDs == nil {
		k.nsIDs = map[string]uint32{}
	}
	key := name + ":" + strconv.FormatUint(st.Ino, 10)
	if id, ok := k.nsIDs[key]; ok {
		return id, nil
	}
	id := k.id()
	k.nsIDs[key] = id
	if name == "uts" {
		var mine unix.Stat_t
		if err := unix.Stat("/proc/self/ns/uts", &mine); err == nil && mine.Ino != st.Ino {
			e, err := utsNamespace(pid)
			if err != nil {
				return 0, err
			}
			if k.newUTS == nil {
				k.newUTS = map[uint32]*pb.UtsnsEntry{}
			}
			k.newUTS[id] = e
		}
	}
	return id, nil
}

// utsNamespace reads the host and domain name of task pid's UTS namespace:
// a throwaway thread enters it and asks uname(2). The thread is never given
// back to the Go scheduler: it ends with its goroutine, namespace and all.
func utsNamespace(pid int) (*pb.UtsnsEntry, error) {
	type result struct {
		e   *pb.UtsnsEntry
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/uts", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: fmt.Errorf("task %d: uts namespace: %w", pid, err)}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
			ch <- result{err: fmt.Errorf("task %d: enter its uts namespace: %w", pid, err)}
			return
		}
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{e: &pb.UtsnsEntry{
			Nodename:   proto.String(unix.ByteSliceToString(u.Nodename[:])),
			Domainname: proto.String(unix.ByteSliceToString(u.Domainname[:])),
		}}
	}()
	r := <-ch
	return r.e, r.err
}

func (k *kobjIDs) of(pid int) (*pb.TaskKobjIdsEntry, error) {
	e := &pb.TaskKobjIdsEntry{
		VmId:      proto.Uint32(k.shared(pid, kcmp.VM)),
		FilesId:   proto.Uint32(k.shared(pid, kcmp.Files)),
		FsId:      proto.Uint32(k.shared(pid, kcmp.FS)),
		SighandId: proto.Uint32(k.shared(pid, kcmp.Sighand)),
	}
	if err := k.nsOf(pid, e); err != nil {
		return nil, err
	}
	return e, nil
}

// nsOf fills in the namespace ids of task pid.
func (k *kobjIDs) nsOf(pid int, e *pb.TaskKobjIdsEntry) error {
	for _, ns := range []struct {
		name string
		set  func(uint32)
	}{
		{"pid", func(v uint32) { e.PidNsId = proto.Uint32(v) }},
		{"net", func(v uint32) { e.NetNsId = proto.Uint32(v) }},
		{"ipc", func(v uint32) { e.IpcNsId = proto.Uint32(v) }},
		{"uts", func(v uint32) { e.UtsNsId = proto.Uint32(v) }},
		{"mnt", func(v uint32) { e.MntNsId = proto.Uint32(v) }},
		{"user", func(v uint32) { e.UserNsId = proto.Uint32(v) }},
		{"cgroup", func(v uint32) { e.CgroupNsId = proto.Uint32(v) }},
		{"time", func(v uint32) { e.TimeNsId = proto.Uint32(v) }},
	} {
		id, err := k.ns(pid, ns.name)
		if err != nil {
			return err
		}
		ns.set(id)
	}
	return nil
}

// writePstree writes pstree.img.
func (d *dumper) writePstree() error {
	pw, err := d.dir.Create(images.PstreeFile, images.KindPstree)
	if err != nil {
		return err
	}
	defer pw.Close()
	for _, e := range d.pstree {
		if err := pw.WriteEntry(e); err != nil {
			return err
		}
	}
	return pw.Close()
}

// seal ends the images: files an earlier dump left in the directory that
// this one did not write are removed, then inventory.img is written, last,
// so that only a whole set of images ever has one. preDumpMode is CRIU's
// pre_dump_mode (0 for a full dump).
func (d *dumper) seal(preDumpMode uint32) error {
	removed, err := d.dir.RemoveStale()
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		log.Infof("removed %d image files of an earlier dump in %s: %s", len(removed), d.dir.Path(), strings.Join(removed, " "))
	}
	inv := &pb.InventoryEntry{
		ImgVersion:  proto.Uint32(imgVersion),
		FdinfoPerId: proto.Bool(true),
		NsPerId:     proto.Bool(true),
		Lsmtype:     lsmType(d.opts.LSM).Enum(),
		DumpUptime:  proto.Uint64(uptimeMicros()),
		// What CRIU's restore must not do for gockpt's images: lift a
		// network lock gockpt never took, or load plugins it never used.
		NetworkLockMethod: proto.Uint32(networkLockSkip),
		PluginsEntry:      &pb.PluginsEntry{},
	}
	if preDumpMode != 0 {
		inv.PreDumpMode = proto.Uint32(preDumpMode)
	} else {
		root, err := d.ids.dumper()
		if err != nil {
			return err
		}
		inv.RootIds = root
	}
	return d.dir.WriteOne(images.InventoryFile, images.KindInventory, inv)
}

// writeGlobal writes the images that describe the whole tree.
func (d *dumper) writeGlobal() error {
	if err := d.writePstree(); err != nil {
		return err
	}
	if err := d.files.WriteImages(d.dir); err != nil {
		return err
	}
	if err := d.writeShmem(); err != nil {
		return err
	}
	for id, e := range d.ids.newUTS {
		if err := d.dir.WriteOne(images.UtsnsFile(id), images.KindUtsns, e); err != nil {
			return err
		}
	}
	if len(d.seccomp.entries) > 0 {
		if err := d.dir.WriteOne(images.SeccompFile, images.KindSeccomp, &pb.SeccompEntry{SeccompFilters: d.seccomp.entries}); err != nil {
			return err
		}
	}
	return nil
}

// writeStats writes stats-dump as CRIU does (times in microseconds).
func (d *dumper) writeStats() error {
	s := d.stats
	us := func(t interface{ Microseconds() int64 }) *uint32 { return proto.Uint32(uint32(t.Microseconds())) }
	e := &pb.StatsEntry{Dump: &pb.DumpStatsEntry{
		FreezingTime:       us(s.FreezingTime),
		FrozenTime:         us(s.FrozenTime),
		MemdumpTime:        us(s.MemdumpTime),
		MemwriteTime:       us(s.MemwriteTime),
		PagesScanned:       proto.Uint64(s.PagesScanned),
		PagesSkippedParent: proto.Uint64(s.PagesSkippedParent),
		PagesWritten:       proto.Uint64(s.PagesWritten),
		PagesLazy:          proto.Uint64(0),
	}}
	return d.dir.WriteOne(images.StatsDumpFile, images.KindStats, e)
}

func uptimeMicros() uint64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return uint64(v * 1e6)
}
