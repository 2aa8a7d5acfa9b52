package images

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

func addFixtureSeeds(f *testing.F) {
	ents, _ := os.ReadDir(fixtureDir)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(fixtureDir, e.Name())); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
}

// FuzzFraming feeds arbitrary bytes to the reader and the JSON converter:
// neither may panic, and whatever decodes must encode back to the same bytes.
func FuzzFraming(f *testing.F) {
	addFixtureSeeds(f)
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, "seed", KindPipesData)
	w.WriteEntry(&pb.PipeDataEntry{PipeId: proto.Uint32(1), Bytes: proto.Uint32(3)})
	w.Write([]byte("abc"))
	w.Close()
	f.Add(buf.Bytes())
	buf.Reset()
	w, _ = NewWriter(&buf, "seed", KindTCPStream)
	w.WriteEntry(&pb.TcpStreamEntry{InqLen: proto.Uint32(1), InqSeq: proto.Uint32(0), OutqLen: proto.Uint32(2),
		OutqSeq: proto.Uint32(0), OptMask: proto.Uint32(0), SndWscale: proto.Uint32(0), MssClamp: proto.Uint32(0)})
	w.Write([]byte("xyz"))
	w.Close()
	f.Add(buf.Bytes())
	buf.Reset()
	w, _ = NewWriter(&buf, "seed", KindGhostFile)
	w.WriteEntry(&pb.GhostFileEntry{Uid: proto.Uint32(0), Gid: proto.Uint32(0), Mode: proto.Uint32(0o100644), Chunks: proto.Bool(true)})
	w.WriteEntry(&pb.GhostChunkEntry{Len: proto.Uint64(2), Off: proto.Uint64(0)})
	w.Write([]byte("hi"))
	w.Close()
	f.Add(buf.Bytes())
	f.Add(le32(CommonMagic, 0x51403912, 4, 0x0108, 0x0110))

	f.Fuzz(func(t *testing.T, data []byte) {
		// Big inputs add nothing (sizes come from fields, not lengths) and
		// make minimizing crawl.
		if len(data) > 8<<10 {
			return
		}
		_ = readAll(data, "fuzz.img")
		r, err := NewReader(bytes.NewReader(data), "fuzz.img")
		if err != nil {
			return
		}
		var js bytes.Buffer
		if err := DecodeJSON(r, &js, len(data)%2 == 0); err != nil {
			return
		}
		var back bytes.Buffer
		if err := EncodeJSON(bytes.NewReader(js.Bytes()), &back, "fuzz.json"); err != nil {
			t.Fatalf("decoded image does not encode: %v\n%s", err, js.Bytes())
		}
		if !bytes.Equal(back.Bytes(), data) {
			t.Fatalf("encode(decode(x)) != x\nx:    % x\nback: % x\njson: %s", data, back.Bytes(), js.Bytes())
		}
	})
}

// FuzzEncodeJSON: `gockpt image encode` reads JSON a user (or anyone) wrote.
// Any input either fails cleanly or encodes to an image that decodes back
// to JSON which encodes to the very same bytes.
func FuzzEncodeJSON(f *testing.F) {
	for _, name := range []string{"inventory.img", "pstree.img", "core-12833.img", "fdinfo-2.img", "pagemap-12833.img"} {
		raw, err := os.ReadFile(filepath.Join(fixtureDir, name))
		if err != nil {
			continue
		}
		var js bytes.Buffer
		if r, err := NewReader(bytes.NewReader(raw), name); err == nil && DecodeJSON(r, &js, false) == nil {
			f.Add(js.Bytes())
		}
	}
	f.Add([]byte(`{"magic":"FS","entries":[{"cwd_id":1,"root_id":2}]}`))
	f.Add([]byte(`{"magic":"PIPES_DATA","entries":[{"pipe_id":1,"bytes":3,"extra":"YWJj"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		var img bytes.Buffer
		if err := EncodeJSON(bytes.NewReader(data), &img, "fuzz.json"); err != nil {
			return
		}
		var js bytes.Buffer
		r, err := NewReader(bytes.NewReader(img.Bytes()), "fuzz.img")
		if err != nil {
			t.Fatalf("encoded image has no valid header: %v", err)
		}
		if err := DecodeJSON(r, &js, false); err != nil {
			t.Fatalf("encoded image does not decode: %v", err)
		}
		var again bytes.Buffer
		if err := EncodeJSON(bytes.NewReader(js.Bytes()), &again, "again.json"); err != nil {
			t.Fatalf("decoded JSON does not encode: %v", err)
		}
		if !bytes.Equal(img.Bytes(), again.Bytes()) {
			t.Fatalf("encode(decode(encode(x))) differs from encode(x)")
		}
	})
}
