package restore

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/gockpt/gockpt/proto"
)

func TestSeccompChainFromImage(t *testing.T) {
	all := []*pb.SeccompFilter{
		{Filter: []byte("outer")},
		{Filter: []byte("middle"), Prev: proto.Uint32(0)},
		{Filter: []byte("inner"), Prev: proto.Uint32(1)},
	}
	chain, err := seccompChain(all, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range chain {
		got = append(got, string(f.GetFilter()))
	}
	if want := "inner middle outer"; strings.Join(got, " ") != want {
		t.Errorf("chain %q, want %q", strings.Join(got, " "), want)
	}
	if _, err := seccompChain(all, 3); err == nil || err.Error() != "seccomp filter 3 is not in seccomp.img (3 filters)" {
		t.Errorf("index out of range: %v", err)
	}
	loop := []*pb.SeccompFilter{{Filter: []byte("a"), Prev: proto.Uint32(1)}, {Filter: []byte("b"), Prev: proto.Uint32(0)}}
	if _, err := seccompChain(loop, 0); err == nil || err.Error() != "seccomp.img: the filters chained from 0 loop" {
		t.Errorf("loop: %v", err)
	}
}
