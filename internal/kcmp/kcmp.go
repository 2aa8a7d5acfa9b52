// Package kcmp finds kernel objects two tasks share, with kcmp(2).
//
// kcmp orders the objects of one type (by their kernel addresses, hidden
// behind a per-boot permutation), so a Set kept in that order finds a
// match in log n calls instead of one call per object seen.
package kcmp

import "golang.org/x/sys/unix"

// Types of kcmp(2) (linux/kcmp.h).
const (
	File    = 0
	VM      = 1
	Files   = 2
	FS      = 3
	Sighand = 4
)

// Compare is kcmp(pa, pb, typ, a, b): 0 the same object, 1 a's orders
// first, 2 b's does, 3 or -1 no order (another kernel, or an error).
func Compare(typ, pa, pb int, a, b uintptr) int {
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pa), uintptr(pb), uintptr(typ), a, b, 0)
	if e != 0 {
		return -1
	}
	return int(r)
}

// Set holds objects of one kcmp type, each named by a task and an index
// (an fd for File, 0 for the per-task types), with a value of the caller's.
type Set[V any] struct {
	Type  int
	items []item[V]
	// unordered is set once kcmp gave no order: lookups go through all.
	unordered bool
}

type item[V any] struct {
	pid int
	idx uintptr
	v   V
}

// Len is the number of objects in the set.
func (s *Set[V]) Len() int { return len(s.items) }

// search returns where (pid, idx) goes: the first object not before it.
func (s *Set[V]) search(pid int, idx uintptr) (int, bool) {
	lo, hi := 0, len(s.items)
	for lo < hi {
		mid := (lo + hi) / 2
		switch Compare(s.Type, pid, s.items[mid].pid, idx, s.items[mid].idx) {
		case 0, 1:
			hi = mid
		case 2:
			lo = mid + 1
		default:
			return 0, false
		}
	}
	return lo, true
}

// Find returns the value of the object (pid, idx) is, if the set has it.
func (s *Set[V]) Find(pid int, idx uintptr) (V, bool) {
	if !s.unordered {
		i, ok := s.search(pid, idx)
		if ok {
			if i < len(s.items) && Compare(s.Type, pid, s.items[i].pid, idx, s.items[i].idx) == 0 {
				return s.items[i].v, true
			}
			var zero V
			return zero, false
		}
		s.unordered = true
	}
	for _, it := range s.items {
		if Compare(s.Type, pid, it.pid, idx, it.idx) == 0 {
			return it.v, true
		}
	}
	var zero V
	return zero, false
}

// FindOrAdd returns the value of the object (pid, idx) is, with true, if
// the set has it; otherwise it adds the object with value mk() and returns
// that, with false. One search serves both.
func (s *Set[V]) FindOrAdd(pid int, idx uintptr, mk func() V) (V, bool) {
	if !s.unordered {
		if i, ok := s.search(pid, idx); ok {
			if i < len(s.items) && Compare(s.Type, pid, s.items[i].pid, idx, s.items[i].idx) == 0 {
				return s.items[i].v, true
			}
			v := mk()
			s.items = append(s.items, item[V]{})
			copy(s.items[i+1:], s.items[i:])
			s.items[i] = item[V]{pid, idx, v}
			return v, false
		}
		s.unordered = true
	}
	for _, it := range s.items {
		if Compare(s.Type, pid, it.pid, idx, it.idx) == 0 {
			return it.v, true
		}
	}
	v := mk()
	s.items = append(s.items, item[V]{pid, idx, v})
	return v, false
}

// Add puts object (pid, idx) in the set with value v; it must not be there.
func (s *Set[V]) Add(pid int, idx uintptr, v V) {
	i := len(s.items)
	if !s.unordered {
		var ok bool
		if i, ok = s.search(pid, idx); !ok {
			s.unordered, i = true, len(s.items)
		}
	}
	s.items = append(s.items, item[V]{})
	copy(s.items[i+1:], s.items[i:])
	s.items[i] = item[V]{pid, idx, v}
}
