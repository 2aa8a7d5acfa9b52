package keeper

import (
	"reflect"
	"strings"
	"testing"
)

func TestDecodeMessage(t *testing.T) {
	for _, tc := range []struct {
		pkt  string
		nfds int
		want string // error; "" for none
	}{
		{`{"v":1,"op":"take"}`, 0, ""},
		{`{"v":1,"op":"release"} `, 0, ""},
		{`{"v":1,"op":"commit","gen":"g1"}`, 0, ""},
		{`{"v":1,"op":"commit","gen":"g1","entries":[{"pid":7,"start":9}],"more":true}`, 1, ""},
		{`{"v":1,"op":"error","error":"no"}`, 0, ""},
		{``, 0, "malformed message: EOF"},
		{`{"v":1,"op":"take"}{}`, 0, "malformed message: data after the JSON object"},
		{`{"v":1,"op":"take","x":1}`, 0, `malformed message: json: unknown field "x"`},
		{`{"v":2,"op":"take"}`, 0, "protocol version 2, want 1 (the keeper was started by another gockpt build?)"},
		{`null`, 0, "protocol version 0, want 1 (the keeper was started by another gockpt build?)"},
		{`{"v":1,"op":"dance"}`, 0, `malformed message: unknown op "dance"`},
		{`{"v":1,"op":"take","gen":"g"}`, 0, "malformed message: take with a payload"},
		{`{"v":1,"op":"error"}`, 0, "malformed message: error without a text, or with entries"},
		{`{"v":1,"op":"take"}`, 1, "malformed message: take lists 0 entries but came with 1 fds"},
		{`{"v":1,"op":"state","entries":[{"pid":7,"start":9}]}`, 0, "malformed message: state lists 1 entries but came with 0 fds"},
		{`{"v":1,"op":"state","entries":[{"pid":0,"start":9}]}`, 1, "malformed message: entry 0: bad pid 0"},
		{`{"v":1,"op":"state","entries":[{"pid":4194305,"start":9}]}`, 1, "malformed message: entry 0: bad pid 4194305"},
		{`{"v":1,"op":"state","entries":[{"pid":1,"start":-1}]}`, 1, "malformed message: json: cannot unmarshal number -1 into Go struct field wireEntry.entries.start of type uint64"},
		{`{"v":1,"op":"commit","gen":"` + strings.Repeat("g", maxGenLen+1) + `"}`, 0, "malformed message: generation of 257 bytes, limit 256"},
		{`{"v":1,"op":"commit","entries":[` + strings.Repeat(`{"pid":1,"start":1},`, maxFdsPerPacket) + `{"pid":1,"start":1}]}`, maxFdsPerPacket + 1, "malformed message: 254 entries in one packet, limit 253"},
	} {
		_, err := decodeMessage([]byte(tc.pkt), tc.nfds)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("decode %.60q with %d fds: %q, want %q", tc.pkt, tc.nfds, got, tc.want)
		}
	}
}

// TestFullPacketFits checks that the largest packet sendEntries makes is
// within maxPacket.
func TestFullPacketFits(t *testing.T) {
	m := &message{Op: opState, Gen: strings.Repeat("\u2603", maxGenLen/3), More: true}
	for range maxFdsPerPacket {
		m.Entries = append(m.Entries, wireEntry{Pid: maxPid, StartTime: ^uint64(0)})
	}
	b, err := encodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMessage(b, maxFdsPerPacket)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Errorf("round trip changed the message")
	}
}

func TestCollector(t *testing.T) {
	var c collector
	if done, err := c.add(&message{Op: opState, Gen: "g", Entries: []wireEntry{{1, 2}}, More: true}, []int{-1}); done || err != nil {
		t.Fatalf("first packet: %v, %v", done, err)
	}
	_, err := c.add(&message{Op: opState, Gen: "h"}, nil)
	if want := `malformed message: state of generation "h" in the middle of state of generation "g"`; err == nil || err.Error() != want {
		t.Errorf("packet of another generation: %v, want %q", err, want)
	}
	if done, err := c.add(&message{Op: opState, Gen: "g", Entries: []wireEntry{{3, 4}}}, []int{-2}); !done || err != nil {
		t.Fatalf("last packet: %v, %v", done, err)
	}
	want := []Entry{{Pid: 1, StartTime: 2, Fd: -1}, {Pid: 3, StartTime: 4, Fd: -2}}
	if !reflect.DeepEqual(c.entries, want) {
		t.Errorf("entries %+v, want %+v", c.entries, want)
	}
}

// FuzzDecodeMessage feeds arbitrary packets to the decoder both ends use.
// A peer is another process: garbage must give an error, never a panic,
// and what decodes must encode back to the same message.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"v":1,"op":"take"}`), 0)
	f.Add([]byte(`{"v":1,"op":"ok"}`), 0)
	f.Add([]byte(`{"v":1,"op":"error","error":"the keeper of uid 0 refuses a client of uid 1"}`), 0)
	f.Add([]byte(`{"v":1,"op":"commit","gen":"g1","entries":[{"pid":7,"start":9},{"pid":8,"start":10}],"more":true}`), 2)
	f.Add([]byte(`{"v":1,"op":"state","gen":"\u00e9","entries":[{"pid":4194304,"start":18446744073709551615}]}`), 1)
	f.Add([]byte(`{"v":1,"op":"state","entries":[{"pid":1e3,"start":1}]}`), 1)
	f.Add([]byte(`{"v":1,"op":"commit","gen":"\xff"}`), 0)
	f.Fuzz(func(t *testing.T, pkt []byte, nfds int) {
		m, err := decodeMessage(pkt, nfds)
		if err != nil {
			return
		}
		if len(m.Entries) != nfds {
			t.Fatalf("decoded %d entries with %d fds", len(m.Entries), nfds)
		}
		b, err := encodeMessage(m)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		m2, err := decodeMessage(b, nfds)
		if err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %+v became %+v", m, m2)
		}
	})
}
