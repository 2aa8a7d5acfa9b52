package dump

import (
	"reflect"
	"testing"

	"github.com/gockpt/gockpt/internal/mem"
)

// TestSplitRanges: ranges cut after n bytes, inside a range or at its end,
// keep every byte once and in order.
func TestSplitRanges(t *testing.T) {
	rs := []mem.Range{{Start: 0x1000, Len: 0x3000}, {Start: 0x10000, Len: 0x2000}}
	for _, c := range []struct {
		n          uint64
		head, tail []mem.Range
	}{
		{0, nil, rs},
		{0x1000, []mem.Range{{Start: 0x1000, Len: 0x1000}}, []mem.Range{{Start: 0x2000, Len: 0x2000}, {Start: 0x10000, Len: 0x2000}}},
		{0x3000, []mem.Range{{Start: 0x1000, Len: 0x3000}}, []mem.Range{{Start: 0x10000, Len: 0x2000}}},
		{0x4000, []mem.Range{{Start: 0x1000, Len: 0x3000}, {Start: 0x10000, Len: 0x1000}}, []mem.Range{{Start: 0x11000, Len: 0x1000}}},
		{0x5000, rs, nil},
		{0x9000, rs, nil},
	} {
		head, tail := splitRanges(rs, c.n)
		if !reflect.DeepEqual(head, c.head) || !reflect.DeepEqual(tail, c.tail) {
			t.Errorf("split at %#x: %v | %v, want %v | %v", c.n, head, tail, c.head, c.tail)
		}
	}
}
