package restore

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/pagemap"
	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

func TestHoldsPages(t *testing.T) {
	entries := []pagemap.Entry{
		{Vaddr: 0x10000, NrPages: 2, Flags: pagemap.FlagPresent},
		{Vaddr: 0x20000, NrPages: 1, Flags: pagemap.FlagLazy},
		{Vaddr: 0x30000, NrPages: 4, Flags: pagemap.FlagParent},
	}
	for _, c := range []struct {
		start, end uint64
		want       bool
	}{
		{0x0, 0x10000, false},
		{0x11000, 0x13000, true},  // the entry's last page
		{0x12000, 0x20000, false}, // just after it
		{0x20000, 0x21000, false}, // lazy pages are not written at restore
		{0x33000, 0x40000, true},  // in the parent images
		{0x34000, 0x40000, false},
	} {
		v := &pb.VmaEntry{Start: proto.Uint64(c.start), End: proto.Uint64(c.end)}
		if got := holdsPages(entries, v); got != c.want {
			t.Errorf("holdsPages(%#x-%#x) = %v, want %v", c.start, c.end, got, c.want)
		}
	}
}

func TestInheritedAreas(t *testing.T) {
	anon := uint32(images.VMAAreaRegular | images.VMAAnonPrivate)
	vma := func(start, end uint64, status, flags uint32, madv uint64) *pb.VmaEntry {
		v := &pb.VmaEntry{Start: proto.Uint64(start), End: proto.Uint64(end), Status: proto.Uint32(status),
			Prot: proto.Uint32(3), Flags: proto.Uint32(flags | 0x22)}
		if madv != 0 {
			v.Madv = proto.Uint64(madv)
		}
		return v
	}
	parent := &Task{Pid: 1, MM: &pb.MmEntry{Vmas: []*pb.VmaEntry{
		vma(0x1000, 0x3000, anon, 0, 0),
		vma(0x4000, 0x5000, anon, 0, 0),
		vma(0x6000, 0x7000, anon, mapLocked, 0),
		vma(0x8000, 0x9000, anon, 0, 1<<madvDontfork),
		vma(0xa000, 0xb000, anon, 0, 0),
		vma(0xa000, 0xb000, images.VMAAreaGuard, 0, 0),
	}}}
	child := &Task{Pid: 2, Parent: parent, MM: &pb.MmEntry{Vmas: []*pb.VmaEntry{
		vma(0x1000, 0x3000, anon, 0, 0),               // same: kept
		vma(0x4000, 0x6000, anon, 0, 0),               // grown since the fork: mapped afresh
		vma(0x6000, 0x7000, anon, mapLocked, 0),       // fork does not inherit mlock
		vma(0x8000, 0x9000, anon, 0, 1<<madvDontfork), // not inherited at all
		vma(0xa000, 0xb000, anon, 0, 0),               // kept: the guard entry is no area
	}}}
	now := []proc.VMA{
		{Start: 0x1000, End: 0x3000, Kind: proc.KindAnon},
		{Start: 0x4000, End: 0x5000, Kind: proc.KindAnon},
		{Start: 0x6000, End: 0x7000, Kind: proc.KindAnon},
		{Start: 0xa000, End: 0xb000, Kind: proc.KindAnon},
	}
	got := inheritedAreas(child, now)
	want := map[cowKey]bool{{0x1000, 0x3000}: true, {0xa000, 0xb000}: true}
	if len(got) != len(want) {
		t.Fatalf("inheritedAreas = %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("inheritedAreas = %v, want %v", got, want)
		}
	}
	if got := inheritedAreas(parent, now); got != nil {
		t.Errorf("inheritedAreas of the root = %v, want none", got)
	}
}
