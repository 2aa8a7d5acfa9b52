package images

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

func le32(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, x)
	}
	return b
}

func writeImage(t *testing.T, k *Kind, msgs ...proto.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "test.img", k)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := w.WriteEntry(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestMagicLayouts(t *testing.T) {
	inv := writeImage(t, KindInventory, &pb.InventoryEntry{ImgVersion: proto.Uint32(2)})
	if !bytes.Equal(inv[:4], le32(0x58313116)) || bytes.Equal(inv[:4], le32(CommonMagic)) {
		t.Errorf("inventory starts % x, want only its own magic", inv[:8])
	}
	core := writeImage(t, KindCore)
	if !bytes.Equal(core, le32(CommonMagic, 0x55053847)) {
		t.Errorf("empty core image is % x", core)
	}
	stats := writeImage(t, KindStats)
	if !bytes.Equal(stats, le32(ServiceMagic, 0x57093306)) {
		t.Errorf("empty stats image is % x", stats)
	}
	for _, b := range [][]byte{inv, core, stats} {
		if _, err := NewReader(bytes.NewReader(b), "x.img"); err != nil {
			t.Errorf("reading back % x: %v", b[:8], err)
		}
	}
}

func TestReadWriteEntries(t *testing.T) {
	want := []*pb.PstreeEntry{
		{Pid: proto.Uint32(10), Ppid: proto.Uint32(0), Pgid: proto.Uint32(10), Sid: proto.Uint32(10), Threads: []uint32{10, 11}},
		{Pid: proto.Uint32(12), Ppid: proto.Uint32(10), Pgid: proto.Uint32(10), Sid: proto.Uint32(10), Threads: []uint32{12}},
	}
	b := writeImage(t, KindPstree, want[0], want[1])
	r, err := NewReader(bytes.NewReader(b), "pstree.img")
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind() != KindPstree {
		t.Fatalf("kind %s", r.Kind().Name)
	}
	for i := range want {
		var got pb.PstreeEntry
		if _, err := r.ReadEntry(&got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, want[i]) {
			t.Errorf("entry %d: got %v want %v", i, &got, want[i])
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after last entry: %v, want io.EOF", err)
	}
	// Asking for the wrong message type is an error, not a misparse.
	r, _ = NewReader(bytes.NewReader(b), "pstree.img")
	if _, err := r.ReadEntry(&pb.CoreEntry{}); err == nil || !strings.Contains(err.Error(), "not a core_entry") {
		t.Errorf("wrong type: %v", err)
	}
}

func TestReadOne(t *testing.T) {
	one := writeImage(t, KindFS, &pb.FsEntry{CwdId: proto.Uint32(1), RootId: proto.Uint32(2)})
	two := writeImage(t, KindFS, &pb.FsEntry{CwdId: proto.Uint32(1), RootId: proto.Uint32(2)}, &pb.FsEntry{CwdId: proto.Uint32(1), RootId: proto.Uint32(2)})
	none := writeImage(t, KindFS)
	var fs pb.FsEntry
	r, _ := NewReader(bytes.NewReader(one), "fs.img")
	if err := r.ReadOne(&fs); err != nil || fs.GetRootId() != 2 {
		t.Errorf("one entry: %v %v", err, &fs)
	}
	r, _ = NewReader(bytes.NewReader(two), "fs.img")
	if err := r.ReadOne(&fs); err == nil || !strings.Contains(err.Error(), "more than one entry") {
		t.Errorf("two entries: %v", err)
	}
	r, _ = NewReader(bytes.NewReader(none), "fs.img")
	if err := r.ReadOne(&fs); err == nil || !strings.Contains(err.Error(), "no entry") {
		t.Errorf("no entries: %v", err)
	}
}

func TestDamagedInput(t *testing.T) {
	good := writeImage(t, KindPstree, &pb.PstreeEntry{Pid: proto.Uint32(1), Ppid: proto.Uint32(0), Pgid: proto.Uint32(1), Sid: proto.Uint32(1)})
	cases := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"empty", nil, "at byte 0: empty file: not an image"},
		{"short magic", []byte{0x19, 0x43}, "at byte 0: truncated magic: 2 of 4 bytes"},
		{"unknown magic", le32(0x12345678), "at byte 0: unknown image magic 0x12345678"},
		{"common then unknown", le32(CommonMagic, 0x12345678), "at byte 4: unknown image magic"},
		{"inventory under common magic", le32(CommonMagic, 0x58313116), "INVENTORY image with a common-magic header"},
		{"core without common magic", le32(0x55053847), "CORE image with a single-magic header"},
		{"truncated size", append(le32(CommonMagic, 0x50273030), 1, 0), "at byte 8: truncated entry size: 2 of 4 bytes"},
		{"truncated entry", good[:len(good)-1], "at byte 12: truncated entry 0: want 8 bytes, file ends after 7"},
		{"huge size", append(le32(CommonMagic, 0x50273030), le32(0xfffffff0)...), "at byte 8: entry 0 claims 4294967280 bytes, more than the"},
		{"garbage entry", append(le32(CommonMagic, 0x50273030, 3), 0xff, 0xff, 0xff), "at byte 12: entry 0 is not a valid pstree_entry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := readAll(c.data, "dir/pstree.img")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "dir/pstree.img: ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to name the file and contain %q", err, c.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("error %T is not a *FormatError", err)
			}
		})
	}
}

func readAll(data []byte, name string) error {
	r, err := NewReader(bytes.NewReader(data), name)
	if err != nil {
		return err
	}
	for {
		if _, err := r.Next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// A size field claiming 60 MiB in a tiny file must not allocate 60 MiB.
func TestBogusSizeAllocatesLittle(t *testing.T) {
	data := append(le32(CommonMagic, 0x50273030), le32(60<<20)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := readAll(data, "x")
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("no error for a truncated entry")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("reading a truncated 60 MiB entry allocated %d bytes", grew)
	}
}

func TestPayloads(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, "pipes-data.img", KindPipesData)
	w.WriteEntry(&pb.PipeDataEntry{PipeId: proto.Uint32(7), Bytes: proto.Uint32(5)})
	w.Write([]byte("hello"))
	w.WriteEntry(&pb.PipeDataEntry{PipeId: proto.Uint32(8), Bytes: proto.Uint32(0)})
	w.Close()
	r, err := NewReader(bytes.NewReader(buf.Bytes()), "pipes-data.img")
	if err != nil {
		t.Fatal(err)
	}
	var pd pb.PipeDataEntry
	extra, err := r.ReadEntry(&pd)
	if err != nil || string(extra) != "hello" || pd.GetPipeId() != 7 {
		t.Errorf("first: %q %v %v", extra, &pd, err)
	}
	extra, err = r.ReadEntry(&pd)
	if err != nil || len(extra) != 0 || pd.GetPipeId() != 8 {
		t.Errorf("second: %q %v %v", extra, &pd, err)
	}
	// The payload is counted by the entry: cutting it is detected.
	err = readAll(buf.Bytes()[:buf.Len()-10], "pipes-data.img")
	if err == nil || !strings.Contains(err.Error(), "truncated data of entry 0: want 5 bytes, file ends after 3") {
		t.Errorf("cut payload: %v", err)
	}
}

func TestRawKinds(t *testing.T) {
	for name, want := range map[string]string{"pages-1.img": "PAGES", "dir/pages-12.img": "PAGES", "iptables-9.img": "RAW"} {
		r, err := NewReader(bytes.NewReader([]byte("data")), name)
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind().Name != want {
			t.Errorf("%s: kind %s, want %s", name, r.Kind().Name, want)
		}
		if _, err := r.Next(); err == nil {
			t.Errorf("%s: Next on a raw image succeeded", name)
		}
		if b, err := r.ReadAll(); err != nil || string(b) != "data" {
			t.Errorf("%s: ReadAll %q %v", name, b, err)
		}
	}
}

func TestKindTable(t *testing.T) {
	for _, k := range Kinds() {
		if got, ok := KindByName(k.Name); !ok || got != k {
			t.Errorf("KindByName(%s)", k.Name)
		}
		if k.Layout == LayoutRaw {
			continue
		}
		if got, ok := KindByMagic(k.Magic); !ok || got != k {
			t.Errorf("KindByMagic(%#x) for %s", k.Magic, k.Name)
		}
	}
	// Spot checks against CRIU's magic.h.
	for name, m := range map[string]uint32{"INVENTORY": 0x58313116, "CORE": 0x55053847, "PAGEMAP": 0x56084025,
		"MM": 0x57492820, "FILES": 0x56303138, "FDINFO": 0x56213732, "TIMENS": 0x43114433, "SECCOMP": 0x64413049} {
		if k, _ := KindByName(name); k == nil || k.Magic != m {
			t.Errorf("%s magic wrong", name)
		}
	}
}
