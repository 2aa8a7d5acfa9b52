package restore

import (
	"fmt"

	pb "github.com/gockpt/gockpt/proto"
)

// seccompChain returns a thread's filters from seccomp.img, innermost
// first: index is the 0-based index of its innermost filter, and each
// entry's prev names the filter installed before it, as CRIU writes them.
// A prev out of range or a loop is refused: the image is damaged.
func seccompChain(all []*pb.SeccompFilter, index uint32) ([]*pb.SeccompFilter, error) {
	var chain []*pb.SeccompFilter
	i := &index
	for i != nil {
		if int(*i) >= len(all) {
			return nil, fmt.Errorf("seccomp filter %d is not in seccomp.img (%d filters)", *i, len(all))
		}
		if len(chain) == len(all) {
			return nil, fmt.Errorf("seccomp.img: the filters chained from %d loop", index)
		}
		f := all[*i]
		chain = append(chain, f)
		i = f.Prev
	}
	return chain, nil
}
