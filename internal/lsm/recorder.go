package lsm

import (
	"fmt"
	"strings"
	"sync"
)

// Recorder is an LSM for tests: it records every call, in order, and
// answers ProcessLabel from Labels. With Inner set, calls are passed on to it
// as well (and its answers win when Labels has no entry).
type Recorder struct {
	Inner  LSM
	Labels map[int]string

	mu    sync.Mutex
	calls []string
}

func (r *Recorder) record(format string, args ...any) {
	r.mu.Lock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// Mark records an event that is not an LSM call, so tests can check the
// order of calls against it (e.g. "listen").
func (r *Recorder) Mark(event string) { r.record("%s", event) }

// Calls returns the calls so far, each as "Method(args)".
func (r *Recorder) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// String lists the calls, one per line.
func (r *Recorder) String() string { return strings.Join(r.Calls(), "\n") }

// Name implements LSM.
func (r *Recorder) Name() string {
	if r.Inner != nil {
		return "recorder+" + r.Inner.Name()
	}
	return "recorder"
}

// ProcessLabel implements LSM.
func (r *Recorder) ProcessLabel(pid int) (string, error) {
	r.record("ProcessLabel(%d)", pid)
	if l, ok := r.Labels[pid]; ok {
		return l, nil
	}
	if r.Inner != nil {
		return r.Inner.ProcessLabel(pid)
	}
	return "", nil
}

// SetSocketCreateLabel implements LSM.
func (r *Recorder) SetSocketCreateLabel(label string) error {
	r.record("SetSocketCreateLabel(%q)", label)
	if r.Inner != nil {
		return r.Inner.SetSocketCreateLabel(label)
	}
	return nil
}

// ProcessLabelWrite implements LSM.
func (r *Recorder) ProcessLabelWrite(label string) (LabelWrite, error) {
	r.record("ProcessLabelWrite(%q)", label)
	if r.Inner != nil {
		return r.Inner.ProcessLabelWrite(label)
	}
	return LabelWrite{Path: threadSelfCurrent, Data: []byte(label)}, nil
}
