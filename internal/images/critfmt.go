package images

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/gockpt/gockpt/proto"
)

// Tables crit uses to print fields marked (criu).flags and (criu).dict in
// pretty mode. The values are the kernel's and CRIU's; the order is crit's,
// since it decides how a value prints.
type flagBit struct {
	name string
	bit  uint64
}

var flagTables = map[string][]flagBit{
	"mmap.prot": {{"PROT_READ", 0x1}, {"PROT_WRITE", 0x2}, {"PROT_EXEC", 0x4}},
	"mmap.flags": {{"MAP_SHARED", 0x1}, {"MAP_PRIVATE", 0x2}, {"MAP_DROPPABLE", 0x08},
		{"MAP_ANON", 0x20}, {"MAP_GROWSDOWN", 0x0100}},
	// CRIU's VMA_* status bits (criu/include/image.h).
	"mmap.status": {{"VMA_AREA_NONE", 0}, {"VMA_AREA_REGULAR", VMAAreaRegular}, {"VMA_AREA_STACK", VMAAreaStack},
		{"VMA_AREA_VSYSCALL", VMAAreaVsyscall}, {"VMA_AREA_VDSO", VMAAreaVDSO}, {"VMA_AREA_HEAP", VMAAreaHeap},
		{"VMA_FILE_PRIVATE", VMAFilePrivate}, {"VMA_FILE_SHARED", VMAFileShared}, {"VMA_ANON_SHARED", VMAAnonShared},
		{"VMA_ANON_PRIVATE", VMAAnonPrivate}, {"VMA_AREA_SYSVIPC", VMAAreaSysVIPC}, {"VMA_AREA_SOCKET", VMAAreaSocket},
		{"VMA_AREA_VVAR", VMAAreaVVAR}, {"VMA_AREA_AIORING", VMAAreaAIORing}, {"VMA_AREA_MEMFD", VMAAreaMemfd},
		{"VMA_AREA_SHSTK", VMAAreaShstk}, {"VMA_AREA_GUARD", VMAAreaGuard}, {"VMA_AREA_UPROBES", VMAAreaUprobes}, {"VMA_UNSUPP", VMAUnsupp}},
	"rfile.flags": {{"O_WRONLY", 0o1}, {"O_RDWR", 0o2}, {"O_CREAT", 0o100}, {"O_EXCL", 0o200},
		{"O_NOCTTY", 0o400}, {"O_TRUNC", 0o1000}, {"O_APPEND", 0o2000}, {"O_NONBLOCK", 0o4000},
		{"O_DSYNC", 0o10000}, {"FASYNC", 0o20000}, {"O_DIRECT", 0o40000}, {"O_LARGEFILE", 0o100000},
		{"O_DIRECTORY", 0o200000}, {"O_NOFOLLOW", 0o400000}, {"O_NOATIME", 0o1000000},
		{"O_CLOEXEC", 0o2000000}},
	"pmap.flags": {{"PE_PARENT", 1 << 0}, {"PE_LAZY", 1 << 1}, {"PE_PRESENT", 1 << 2}},
	"seals.flags": {{"F_SEAL_SEAL", 0x1}, {"F_SEAL_SHRINK", 0x2}, {"F_SEAL_GROW", 0x4},
		{"F_SEAL_WRITE", 0x8}, {"F_SEAL_FUTURE_WRITE", 0x10}},
}

// dictTables map a dict name and field name to value names.
var dictTables = map[string]map[string]map[uint64]string{
	// Older crit printed 3 as Zombie and 6 as Stopped; crit and go-criu
	// now name each state as compel's task-state.h does.
	"gen": {"task_state": {TaskAlive: "Alive", TaskDead: "Dead", TaskStopped: "Stopped", TaskZombie: "Zombie"}},
	"sk": {
		"family": {1: "UNIX", 2: "INET", 10: "INET6", 16: "NETLINK", 17: "PACKET"},
		"type":   {1: "STREAM", 2: "DGRAM", 3: "RAW", 5: "SEQPACKET", 10: "PACKET"},
		"state": {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
			6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN"},
		"proto": {0: "IP", 6: "TCP", 17: "UDP", 136: "UDPLITE"},
	},
}

// FlagString renders v with the named flag table the way crit does:
// "MAP_PRIVATE | MAP_ANON", with unknown bits as a trailing hex number.
func FlagString(table string, v uint64) string {
	t, ok := flagTables[table]
	if !ok {
		return fmt.Sprintf("%#x", v)
	}
	var parts []string
	rest := v
	for _, f := range t {
		if v&f.bit != 0 {
			parts = append(parts, f.name)
		}
		rest &^= f.bit
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", rest))
	}
	return strings.Join(parts, " | ")
}

func parseFlags(table string, s string, bits int) (uint64, error) {
	t := flagTables[table]
	var v uint64
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	for _, part := range strings.Split(s, "|") {
		part = strings.TrimSpace(part)
		found := false
		for _, f := range t {
			if f.name == part {
				v |= f.bit
				found = true
				break
			}
		}
		if found {
			continue
		}
		n, err := strconv.ParseUint(part, 0, bits)
		if err != nil {
			return 0, fmt.Errorf("%q is neither a %s flag nor a number", part, table)
		}
		v |= n
	}
	return v, nil
}

// critOpts returns the printing hints of a field, or an empty set.
func critOpts(fd protoreflect.FieldDescriptor) *pb.CritOpts {
	o, ok := fd.Options().(*descriptorpb.FieldOptions)
	if !ok || o == nil {
		return &pb.CritOpts{}
	}
	c, ok := proto.GetExtension(o, pb.E_Criu).(*pb.CritOpts)
	if !ok || c == nil {
		return &pb.CritOpts{}
	}
	return c
}

// Kernel dev_t as CRIU stores it (20 minor bits), and glibc's encoding for
// fields marked odev.
func devString(v uint64, old bool) string {
	if old {
		major := (v>>8)&0xfff | (v>>32)&^0xfff
		minor := v&0xff | (v>>12)&^0xff
		return fmt.Sprintf("%d:%d", major, minor)
	}
	return fmt.Sprintf("%d:%d", v>>20, v&(1<<20-1))
}

func parseDev(s string, old bool) (uint64, error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("%q is not major:minor", s)
	}
	major, err1 := strconv.ParseUint(a, 10, 32)
	minor, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not major:minor", s)
	}
	if old {
		return minor&0xff | (major&0xfff)<<8 | (minor&^0xff)<<12 | (major&^0xfff)<<32, nil
	}
	return major<<20 | minor, nil
}
