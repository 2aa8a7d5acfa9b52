package dump

import (
	"github.com/gockpt/gockpt/internal/lsm"
	pb "github.com/gockpt/gockpt/proto"
)

// lsmType is what inventory.img records about the host's security module,
// so that restore knows what the labels in the images mean.
func lsmType(m lsm.LSM) pb.Lsmtype {
	if m.Name() == "selinux" {
		return pb.Lsmtype_SELINUX
	}
	return pb.Lsmtype_NO_LSM
}
