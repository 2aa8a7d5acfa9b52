package dump

import (
	"github.com/gockpt/gockpt/internal/ptrace"
	pb "github.com/gockpt/gockpt/proto"
)

// TEMPORARY until the parasite lands.
func (d *dumper) fromParasite(t *ptrace.Task, cores []*pb.CoreEntry, mm *pb.MmEntry) error {
	return nil
}
