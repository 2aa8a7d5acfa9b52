package images

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

func decodeJSON(t *testing.T, img []byte, name string, pretty bool) string {
	t.Helper()
	r, err := NewReader(bytes.NewReader(img), name)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := DecodeJSON(r, &out, pretty); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func encodeJSON(t *testing.T, js string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := EncodeJSON(strings.NewReader(js), &out, "in.json"); err != nil {
		t.Fatalf("encode: %v\n%s", err, js)
	}
	return out.Bytes()
}

func roundTrip(t *testing.T, img []byte, name string) {
	t.Helper()
	for _, pretty := range []bool{false, true} {
		js := decodeJSON(t, img, name, pretty)
		if back := encodeJSON(t, js); !bytes.Equal(back, img) {
			t.Errorf("%s pretty=%v: round trip differs\n% x\n% x\n%s", name, pretty, img, back, js)
		}
	}
}

func TestJSONCritShape(t *testing.T) {
	vma := &pb.VmaEntry{Start: proto.Uint64(0x7f0000000000), End: proto.Uint64(0x7f0000100000), Pgoff: proto.Uint64(0),
		Shmid: proto.Uint64(0), Prot: proto.Uint32(3), Flags: proto.Uint32(0x22), Status: proto.Uint32(0x201), Fd: proto.Int64(-1)}
	img := writeImage(t, kindByNameMust("VMAS"), vma)
	plain := decodeJSON(t, img, "vmas.img", false)
	want := `{"magic":"VMAS","entries":[{"start":139637976727552,"end":139637977776128,"pgoff":0,"shmid":0,"prot":3,"flags":34,"status":513,"fd":-1}]}` + "\n"
	if plain != want {
		t.Errorf("plain:\n%s\nwant\n%s", plain, want)
	}
	pretty := decodeJSON(t, img, "vmas.img", true)
	for _, s := range []string{`"start": "0x7f0000000000"`, `"prot": "PROT_READ | PROT_WRITE"`,
		`"flags": "MAP_PRIVATE | MAP_ANON"`, `"status": "VMA_AREA_REGULAR | VMA_ANON_PRIVATE"`, `"fd": -1`} {
		if !strings.Contains(pretty, s) {
			t.Errorf("pretty output lacks %s:\n%s", s, pretty)
		}
	}
	roundTrip(t, img, "vmas.img")
}

func TestJSONPrettyKinds(t *testing.T) {
	// inet addresses, dict values, device numbers, enums, bytes.
	isk := &pb.InetSkEntry{Id: proto.Uint32(1), Ino: proto.Uint32(2), Family: proto.Uint32(2), Type: proto.Uint32(1),
		Proto: proto.Uint32(6), State: proto.Uint32(10), SrcPort: proto.Uint32(80), DstPort: proto.Uint32(0),
		Flags: proto.Uint32(0x800), Backlog: proto.Uint32(128), SrcAddr: []uint32{0x0100007f},
		DstAddr: []uint32{0, 0, 0xffff0000, 0x0100007f},
		Fown:    &pb.FownEntry{Uid: proto.Uint32(0), Euid: proto.Uint32(0), Signum: proto.Uint32(0), PidType: proto.Uint32(0), Pid: proto.Uint32(0)},
		Opts: &pb.SkOptsEntry{SoSndbuf: proto.Uint32(1), SoRcvbuf: proto.Uint32(1), SoSndTmoSec: proto.Uint64(0),
			SoSndTmoUsec: proto.Uint64(0), SoRcvTmoSec: proto.Uint64(0), SoRcvTmoUsec: proto.Uint64(0)},
		Shutdown: pb.SkShutdown_BOTH.Enum()}
	img := writeImage(t, kindByNameMust("INETSK"), isk)
	pretty := decodeJSON(t, img, "inetsk.img", true)
	for _, s := range []string{`"family": "INET"`, `"proto": "TCP"`, `"state": "LISTEN"`, `"src_addr": [` + "\n" + `                "127.0.0.1"`,
		`"::ffff:127.0.0.1"`, `"flags": "0x800"`, `"shutdown": "BOTH"`} {
		if !strings.Contains(pretty, s) {
			t.Errorf("pretty output lacks %s:\n%s", s, pretty)
		}
	}
	roundTrip(t, img, "inetsk.img")

	wd := &pb.InotifyWdEntry{Id: proto.Uint32(1), IIno: proto.Uint64(5), Mask: proto.Uint32(2), IgnoredMask: proto.Uint32(0),
		SDev: proto.Uint32(8<<20 | 1), Wd: proto.Uint32(1),
		FHandle: &pb.FhEntry{Bytes: proto.Uint32(8), Type: proto.Uint32(1), Handle: []uint64{1, 2}}}
	img = writeImage(t, kindByNameMust("INOTIFY_WD"), wd)
	if p := decodeJSON(t, img, "wd.img", true); !strings.Contains(p, `"s_dev": "8:1"`) {
		t.Errorf("dev not major:minor:\n%s", p)
	}
	roundTrip(t, img, "wd.img")

	sec := &pb.SeccompEntry{SeccompFilters: []*pb.SeccompFilter{{Filter: []byte{6, 0, 0, 0, 0, 0, 0xff, 0x7f}}}}
	roundTrip(t, writeImage(t, KindSeccomp, sec), "seccomp.img")
}

// Task states print with the names crit and go-criu's crit give them and
// encode back to their numbers.
func TestJSONTaskStates(t *testing.T) {
	for st, name := range map[uint32]string{TaskAlive: "Alive", TaskDead: "Dead", TaskStopped: "Stopped", TaskZombie: "Zombie"} {
		core := &pb.CoreEntry{Mtype: pb.CoreEntry_X86_64.Enum(), Tc: &pb.TaskCoreEntry{TaskState: proto.Uint32(st),
			ExitCode: proto.Uint32(0), Personality: proto.Uint32(0), Flags: proto.Uint32(0), BlkSigset: proto.Uint64(0), Comm: proto.String("c")}}
		img := writeImage(t, KindCore, core)
		if p := decodeJSON(t, img, "core.img", true); !strings.Contains(p, `"task_state": "`+name+`"`) {
			t.Errorf("task state %d does not print as %s:\n%s", st, name, p)
		}
		roundTrip(t, img, "core.img")
	}
}

// Hand-written pretty JSON, as a user would edit it, encodes.
func TestJSONEdited(t *testing.T) {
	js := `{"magic": "VMAS", "entries": [{"start": "0x1000", "end": "0x3000", "pgoff": 0, "shmid": 0,
		"prot": "PROT_READ | 0x8", "flags": "MAP_SHARED", "status": "", "fd": -1}]}`
	img := encodeJSON(t, js)
	r, _ := NewReader(bytes.NewReader(img), "vmas.img")
	var v pb.VmaEntry
	if err := r.ReadOne(&v); err != nil {
		t.Fatal(err)
	}
	if v.GetStart() != 0x1000 || v.GetEnd() != 0x3000 || v.GetProt() != 9 || v.GetFlags() != 1 || v.GetStatus() != 0 || v.GetFd() != -1 {
		t.Errorf("decoded %v", &v)
	}
}

func TestJSONErrors(t *testing.T) {
	cases := []struct{ js, want string }{
		{`{"magic": "NOPE", "entries": []}`, `in.json: unknown magic "NOPE"`},
		{`{"magic": "FS", "entries": [{"cwd_id": 1, "bogus": 2}]}`, `in.json: entry 0: fs_entry has no field "bogus"`},
		{`{"magic": "FS", "entries": [{"cwd_id": "x"}]}`, `in.json: entry 0: cwd_id: x is not a 32-bit unsigned integer`},
		{`{"magic": "FS", "entries": [{"cwd_id": 4294967296}]}`, `cwd_id: 4294967296 is not a 32-bit unsigned integer`},
		{`{"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 3, "extra": "YQ=="}]}`, `entry 0: extra holds 1 bytes but the entry says 3 follow`},
		{`{"magic": "FS", "entries": [{"cwd_id": 1, "extra": "YQ=="}]}`, `FS images carry no "extra"`},
		{`{"magic": "PAGES"}`, `PAGES images need a "raw" key`},
		{`not json`, `in.json: not the JSON form of an image`},
		{`{"magic": "GHOST_FILE", "entries": [{"uid": 0, "gid": 0, "mode": 0, "extra": ""}, {"len": 0, "off": 0}]}`,
			`in.json: entry 1: nothing can follow entry 0, whose data runs to the end of the file`},
	}
	for _, c := range cases {
		var out bytes.Buffer
		err := EncodeJSON(strings.NewReader(c.js), &out, "in.json")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.js, err, c.want)
		}
	}
}

func TestJSONPayloads(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, "x", KindTCPStream)
	w.WriteEntry(&pb.TcpStreamEntry{InqLen: proto.Uint32(2), InqSeq: proto.Uint32(9), OutqLen: proto.Uint32(3),
		OutqSeq: proto.Uint32(7), OptMask: proto.Uint32(0x5), SndWscale: proto.Uint32(7), MssClamp: proto.Uint32(1460)})
	w.Write([]byte("in" + "out"))
	w.Close()
	js := decodeJSON(t, buf.Bytes(), "tcp-stream-1.img", false)
	if !strings.Contains(js, `"extra":{"inq":"aW4=","outq":"b3V0"}`) {
		t.Errorf("tcp extra: %s", js)
	}
	roundTrip(t, buf.Bytes(), "tcp-stream-1.img")

	// A ghost file without chunks: the content runs to the end.
	buf.Reset()
	w, _ = NewWriter(&buf, "x", KindGhostFile)
	w.WriteEntry(&pb.GhostFileEntry{Uid: proto.Uint32(0), Gid: proto.Uint32(0), Mode: proto.Uint32(0o100600), Size: proto.Uint64(5)})
	w.Write([]byte("ghost"))
	w.Close()
	js = decodeJSON(t, buf.Bytes(), "ghost-file-1.img", false)
	if !strings.Contains(js, `"extra":"Z2hvc3Q="`) {
		t.Errorf("ghost extra: %s", js)
	}
	roundTrip(t, buf.Bytes(), "ghost-file-1.img")

	buf.Reset()
	w, _ = NewWriter(&buf, "x", KindSkQueues)
	w.WriteEntry(&pb.SkPacketEntry{IdFor: proto.Uint32(3), Length: proto.Uint32(4), Scm: []*pb.ScmEntry{{Type: proto.Uint32(1), Rights: []uint32{5}}}})
	w.Write([]byte("pkt!"))
	w.Close()
	roundTrip(t, buf.Bytes(), "sk-queues.img")

	// Raw and opaque kinds keep their body.
	roundTrip(t, []byte("\x00\x01page data"), "pages-3.img")
	roundTrip(t, append(le32(CommonMagic, 0x46283044), 1, 2, 3, 4, 5), "ipcns-shm-1.img")
}

// Fields the schema lacks, repeated fields and kinds without a schema all
// survive decode and encode.
func TestJSONLossless(t *testing.T) {
	fs, _ := proto.Marshal(&pb.FsEntry{CwdId: proto.Uint32(1), RootId: proto.Uint32(2)})
	unknown := protowire.AppendTag(append([]byte{}, fs...), 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 12345)
	dup := append(append([]byte{}, fs...), fs...) // each field twice: last wins when parsed
	for name, entry := range map[string][]byte{"unknown": unknown, "duplicate": dup} {
		img := append(le32(CommonMagic, 0x51403912, uint32(len(entry))), entry...)
		js := decodeJSON(t, img, "fs-1.img", false)
		if name == "unknown" && !strings.Contains(js, `"__unknown"`) {
			t.Errorf("unknown field not shown: %s", js)
		}
		if name == "duplicate" && !strings.Contains(js, `"__raw"`) {
			t.Errorf("non-canonical entry kept no raw bytes: %s", js)
		}
		roundTrip(t, img, "fs-1.img")
	}
	// With __raw present, an edit still takes effect.
	img := append(le32(CommonMagic, 0x51403912, uint32(len(dup))), dup...)
	js := strings.Replace(decodeJSON(t, img, "fs-1.img", false), `"root_id":2`, `"root_id":7`, 1)
	r, _ := NewReader(bytes.NewReader(encodeJSON(t, js)), "fs-1.img")
	var got pb.FsEntry
	if err := r.ReadOne(&got); err != nil || got.GetRootId() != 7 {
		t.Errorf("edit lost: %v %v", &got, err)
	}
	// A kind without a schema.
	img = append(le32(CommonMagic, 0x55563928, 3), 8, 1, 0x10)
	if js := decodeJSON(t, img, "mountpoints-1.img", false); !strings.Contains(js, `"__raw":"CAEQ"`) {
		t.Errorf("schemaless entry: %s", js)
	}
	roundTrip(t, img, "mountpoints-1.img")
}

// Output is valid JSON with crit's top-level shape for every fixture file.
func TestFixtureJSONShape(t *testing.T) {
	for _, name := range fixtureFiles(t) {
		b, _ := os.ReadFile(filepath.Join(fixtureDir, name))
		var img struct {
			Magic   string           `json:"magic"`
			Entries []map[string]any `json:"entries"`
		}
		if err := json.Unmarshal([]byte(decodeJSON(t, b, name, true)), &img); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Magic == "" || (img.Magic != "PAGES" && len(img.Entries) == 0) {
			t.Errorf("%s: magic %q, %d entries", name, img.Magic, len(img.Entries))
		}
	}
}
