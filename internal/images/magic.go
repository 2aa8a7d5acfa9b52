package images

import (
	"fmt"
	"math"
	"sort"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/gockpt/gockpt/proto"
)

// The first u32 of most image files; the second then names the image type.
// CRIU's magic.h is the authority for every value here.
const (
	CommonMagic  uint32 = 0x54564319
	ServiceMagic uint32 = 0x55105940
)

// Layout says how an image file starts.
type Layout int

const (
	// LayoutCommon files start with CommonMagic, then the kind's magic.
	LayoutCommon Layout = iota
	// LayoutService files (stats, irmap cache) start with ServiceMagic.
	LayoutService
	// LayoutSingle files (inventory) carry only the kind's magic, so that
	// tools can tell the image version from it alone.
	LayoutSingle
	// LayoutRaw files (pages-N.img, iptables dumps, ...) have no magic and
	// no entries, only data.
	LayoutRaw
)

// Kind describes one type of image file: its magic, how it starts, and which
// protobuf messages its entries hold.
type Kind struct {
	Name   string // crit's name, e.g. "CORE"
	Magic  uint32
	Layout Layout
	// New returns an empty entry message, or nil when gockpt has no schema
	// for this kind (its entries are then carried as opaque bytes).
	New func() proto.Message
	// First, when set, is the message of the first entry only (pagemap_head,
	// ghost_file_entry); the rest are New.
	First func() proto.Message
	// Opaque kinds have entries gockpt cannot frame without their schema
	// (data follows some entries); the whole body is kept as one blob.
	Opaque bool
	// extra tells how many raw bytes follow an entry: n < 0 when this entry
	// has no payload, rest when it runs to the end of the file. Nil when no
	// entry of the kind carries a payload.
	extra func(index int, first proto.Message, m proto.Message) (n int64, rest bool)

	// The message types of New and First, found once.
	descOnce        sync.Once
	desc, firstDesc protoreflect.MessageDescriptor
}

// HasSchema tells whether entries of this kind can be parsed.
func (k *Kind) HasSchema() bool { return k.New != nil }

// isEntryMessage tells whether m is of the type of the entry at index,
// without making one.
func (k *Kind) isEntryMessage(index int, m proto.Message) bool {
	k.descOnce.Do(func() {
		if k.New != nil {
			k.desc = k.New().ProtoReflect().Descriptor()
		}
		if k.First != nil {
			k.firstDesc = k.First().ProtoReflect().Descriptor()
		}
	})
	want := k.desc
	if index == 0 && k.First != nil {
		want = k.firstDesc
	}
	return want != nil && m.ProtoReflect().Descriptor() == want
}

// entryMessage returns an empty message for the entry at index, or nil.
func (k *Kind) entryMessage(index int) proto.Message {
	if index == 0 && k.First != nil {
		return k.First()
	}
	if k.New == nil {
		return nil
	}
	return k.New()
}

func msg[T any, P interface {
	*T
	proto.Message
}]() func() proto.Message {
	return func() proto.Message { return P(new(T)) }
}

// Kinds known to gockpt, by crit name. Magic values come from CRIU's
// criu/include/magic.h; message types from crit's handler table.
var kinds = []*Kind{
	{Name: "INVENTORY", Magic: 0x58313116, Layout: LayoutSingle, New: msg[pb.InventoryEntry]()},
	{Name: "PSTREE", Magic: 0x50273030, New: msg[pb.PstreeEntry]()},
	{Name: "FDINFO", Magic: 0x56213732, New: msg[pb.FdinfoEntry]()},
	{Name: "PAGEMAP", Magic: 0x56084025, First: msg[pb.PagemapHead](), New: msg[pb.PagemapEntry]()},
	{Name: "CORE", Magic: 0x55053847, New: msg[pb.CoreEntry]()},
	{Name: "IDS", Magic: 0x54432030, New: msg[pb.TaskKobjIdsEntry]()},
	{Name: "VMAS", Magic: 0x54123737, New: msg[pb.VmaEntry]()},
	{Name: "PIPES", Magic: 0x56513555, New: msg[pb.PipeEntry]()},
	{Name: "PIPES_DATA", Magic: 0x56453709, New: msg[pb.PipeDataEntry](), extra: pipeDataExtra},
	{Name: "FIFO", Magic: 0x58364939, New: msg[pb.FifoEntry]()},
	{Name: "FIFO_DATA", Magic: 0x59333054, New: msg[pb.PipeDataEntry](), extra: pipeDataExtra},
	{Name: "SIGACT", Magic: 0x55344201, New: msg[pb.SaEntry]()},
	{Name: "UNIXSK", Magic: 0x54373943, New: msg[pb.UnixSkEntry]()},
	{Name: "INETSK", Magic: 0x56443851, New: msg[pb.InetSkEntry]()},
	{Name: "PACKETSK", Magic: 0x60454618, New: msg[pb.PacketSockEntry]()},
	{Name: "ITIMERS", Magic: 0x57464056, New: msg[pb.ItimerEntry]()},
	{Name: "POSIX_TIMERS", Magic: 0x52603957, New: msg[pb.PosixTimerEntry]()},
	{Name: "SK_QUEUES", Magic: 0x56264026, New: msg[pb.SkPacketEntry](), extra: skQueuesExtra},
	{Name: "UTSNS", Magic: 0x54473203, New: msg[pb.UtsnsEntry]()},
	{Name: "CREDS", Magic: 0x54023547, New: msg[pb.CredsEntry]()},
	{Name: "IPC_VAR", Magic: 0x53115007},
	{Name: "IPCNS_SHM", Magic: 0x46283044, Opaque: true},
	{Name: "IPCNS_MSG", Magic: 0x55453737, Opaque: true},
	{Name: "IPCNS_SEM", Magic: 0x59573019, Opaque: true},
	{Name: "REG_FILES", Magic: 0x50363636, New: msg[pb.RegFileEntry]()},
	{Name: "EXT_FILES", Magic: 0x59255641, New: msg[pb.ExtFileEntry]()},
	{Name: "FS", Magic: 0x51403912, New: msg[pb.FsEntry]()},
	{Name: "MM", Magic: 0x57492820, New: msg[pb.MmEntry]()},
	{Name: "REMAP_FPATH", Magic: 0x59133954, New: msg[pb.RemapFilePathEntry]()},
	{Name: "GHOST_FILE", Magic: 0x52583605, First: msg[pb.GhostFileEntry](), New: msg[pb.GhostChunkEntry](), extra: ghostExtra},
	{Name: "TCP_STREAM", Magic: 0x51465506, New: msg[pb.TcpStreamEntry](), extra: tcpStreamExtra},
	{Name: "EVENTFD_FILE", Magic: 0x44523722, New: msg[pb.EventfdFileEntry]()},
	{Name: "EVENTPOLL_FILE", Magic: 0x45023858, New: msg[pb.EventpollFileEntry]()},
	{Name: "EVENTPOLL_TFD", Magic: 0x44433746, New: msg[pb.EventpollTfdEntry]()},
	{Name: "SIGNALFD", Magic: 0x57323820, New: msg[pb.SignalfdEntry]()},
	{Name: "INOTIFY_FILE", Magic: 0x48424431, New: msg[pb.InotifyFileEntry]()},
	{Name: "INOTIFY_WD", Magic: 0x54562009, New: msg[pb.InotifyWdEntry]()},
	{Name: "MNTS", Magic: 0x55563928},
	{Name: "NETDEV", Magic: 0x57373951},
	{Name: "NETNS", Magic: 0x55933752},
	{Name: "TTY_FILES", Magic: 0x59433025, New: msg[pb.TtyFileEntry]()},
	{Name: "TTY_INFO", Magic: 0x59453036, New: msg[pb.TtyInfoEntry]()},
	{Name: "TTY_DATA", Magic: 0x59413026, New: msg[pb.TtyDataEntry]()},
	{Name: "FILE_LOCKS", Magic: 0x54323616, New: msg[pb.FileLockEntry]()},
	{Name: "RLIMIT", Magic: 0x57113925, New: msg[pb.RlimitEntry]()},
	{Name: "FANOTIFY_FILE", Magic: 0x55096122, New: msg[pb.FanotifyFileEntry]()},
	{Name: "FANOTIFY_MARK", Magic: 0x56506035, New: msg[pb.FanotifyMarkEntry]()},
	// signal-p-TID.img and signal-s-PID.img: one siginfo per pending signal.
	{Name: "SIGNAL", Magic: 0x59255647, New: msg[pb.SiginfoEntry]()},
	{Name: "NETLINK_SK", Magic: 0x58005614, New: msg[pb.NetlinkSkEntry]()},
	{Name: "NS_FILES", Magic: 0x61394011, New: msg[pb.NsFileEntry]()},
	{Name: "TUNFILE", Magic: 0x57143751, New: msg[pb.TunfileEntry]()},
	{Name: "CGROUP", Magic: 0x59383330},
	{Name: "TIMERFD", Magic: 0x50493712, New: msg[pb.TimerfdEntry]()},
	{Name: "CPUINFO", Magic: 0x61404013},
	{Name: "USERNS", Magic: 0x55474906},
	{Name: "SECCOMP", Magic: 0x64413049, New: msg[pb.SeccompEntry]()},
	{Name: "BINFMT_MISC", Magic: 0x67343323},
	{Name: "AUTOFS", Magic: 0x49353943},
	{Name: "FILES", Magic: 0x56303138, New: msg[pb.FileEntry]()},
	{Name: "MEMFD_INODE", Magic: 0x48453499, New: msg[pb.MemfdInodeEntry]()},
	{Name: "TIMENS", Magic: 0x43114433, New: msg[pb.TimensEntry]()},
	{Name: "PIDNS", Magic: 0x61157326},
	{Name: "BPFMAP_FILE", Magic: 0x57506142, New: msg[pb.BpfmapFileEntry]()},
	// bpfmap-data entries carry key and value bytes after them; without the
	// schema we cannot size them, so the whole rest is kept as one blob.
	{Name: "BPFMAP_DATA", Magic: 0x64324033, Opaque: true},
	{Name: "APPARMOR", Magic: 0x59423047},
	{Name: "PIDFD", Magic: 0x54435556, New: msg[pb.PidfdEntry]()},
	{Name: "STATS", Magic: 0x57093306, Layout: LayoutService, New: msg[pb.StatsEntry]()},
	{Name: "IRMAP_CACHE", Magic: 0x57004059, Layout: LayoutService, New: msg[pb.IrmapCacheEntry]()},
	{Name: "KDAT", Magic: 0x57023458, Layout: LayoutService},
	{Name: "PAGES", Layout: LayoutRaw},
	// Other magic-less files (iptables, tmpfs and netns dumps): opaque data.
	{Name: "RAW", Layout: LayoutRaw},
}

var (
	kindByName  = map[string]*Kind{}
	kindByMagic = map[uint32]*Kind{}
)

func init() {
	for _, k := range kinds {
		if kindByName[k.Name] != nil {
			panic("images: duplicate kind " + k.Name)
		}
		kindByName[k.Name] = k
		if k.Layout == LayoutRaw {
			continue
		}
		if o := kindByMagic[k.Magic]; o != nil {
			panic(fmt.Sprintf("images: kinds %s and %s share magic %#x", o.Name, k.Name, k.Magic))
		}
		kindByMagic[k.Magic] = k
	}
}

// KindByName returns the kind crit calls name ("CORE", "PAGEMAP", ...).
func KindByName(name string) (*Kind, bool) {
	k, ok := kindByName[name]
	return k, ok
}

// KindByMagic returns the kind whose own magic is m (the second u32 of a
// two-magic file, the only one of an inventory).
func KindByMagic(m uint32) (*Kind, bool) {
	k, ok := kindByMagic[m]
	return k, ok
}

// Kinds returns every known kind sorted by name.
func Kinds() []*Kind {
	out := append([]*Kind(nil), kinds...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Well-known kinds, for callers that write images.
var (
	KindInventory  = kindByNameMust("INVENTORY")
	KindPstree     = kindByNameMust("PSTREE")
	KindCore       = kindByNameMust("CORE")
	KindIDs        = kindByNameMust("IDS")
	KindMM         = kindByNameMust("MM")
	KindPagemap    = kindByNameMust("PAGEMAP")
	KindPages      = kindByNameMust("PAGES")
	KindFS         = kindByNameMust("FS")
	KindFdinfo     = kindByNameMust("FDINFO")
	KindFiles      = kindByNameMust("FILES")
	KindPipesData  = kindByNameMust("PIPES_DATA")
	KindFifoData   = kindByNameMust("FIFO_DATA")
	KindSkQueues   = kindByNameMust("SK_QUEUES")
	KindTCPStream  = kindByNameMust("TCP_STREAM")
	KindGhostFile  = kindByNameMust("GHOST_FILE")
	KindSeccomp    = kindByNameMust("SECCOMP")
	KindTimens     = kindByNameMust("TIMENS")
	KindStats      = kindByNameMust("STATS")
	KindTtyInfo    = kindByNameMust("TTY_INFO")
	KindRemapFpath = kindByNameMust("REMAP_FPATH")
	KindUtsns      = kindByNameMust("UTSNS")
	KindFileLocks  = kindByNameMust("FILE_LOCKS")
	KindMemfdInode = kindByNameMust("MEMFD_INODE")
)

func kindByNameMust(name string) *Kind {
	for _, k := range kinds {
		if k.Name == name {
			return k
		}
	}
	panic("images: no kind " + name)
}

func pipeDataExtra(_ int, _, m proto.Message) (int64, bool) {
	return int64(m.(*pb.PipeDataEntry).GetBytes()), false
}

func skQueuesExtra(_ int, _, m proto.Message) (int64, bool) {
	return int64(m.(*pb.SkPacketEntry).GetLength()), false
}

func tcpStreamExtra(_ int, _, m proto.Message) (int64, bool) {
	e := m.(*pb.TcpStreamEntry)
	return int64(e.GetInqLen()) + int64(e.GetOutqLen()), false
}

// A ghost file is either one entry followed by the whole content, or (for
// sparse files, chunks set) the entry and then chunk entries each followed
// by its data.
func ghostExtra(index int, first, m proto.Message) (int64, bool) {
	if index == 0 {
		if m.(*pb.GhostFileEntry).GetChunks() {
			return -1, false
		}
		return 0, true
	}
	if !first.(*pb.GhostFileEntry).GetChunks() {
		// Unreachable through Reader: the content ran to the end of the file.
		return -1, false
	}
	n := m.(*pb.GhostChunkEntry).GetLen()
	if n > math.MaxInt64 {
		n = math.MaxInt64
	}
	return int64(n), false
}
