// Package lsm reads and sets Linux security module labels for dump and
// restore: the label of a task, the label of sockets gockpt creates for the
// parasite, and what restore must write inside a task to give it its label.
//
// Only SELinux is supported. Detect returns a no-op implementation on hosts
// where SELinux is not enabled, so callers never branch on the host.
//
// Socket-creation labels are per OS thread (/proc/thread-self/attr/sockcreate):
// callers lock the goroutine to its thread (runtime.LockOSThread) from
// SetSocketCreateLabel(label) until SetSocketCreateLabel("") after creating
// the socket.
package lsm

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LSM is one security module as gockpt uses it.
type LSM interface {
	// Name is the module's name as the kernel spells it ("selinux"), or
	// "none".
	Name() string
	// ProcessLabel returns the context of task pid, "" when the module is
	// not active for it.
	ProcessLabel(pid int) (string, error)
	// SetSocketCreateLabel sets the label of sockets the calling thread
	// creates next (setsockcreatecon); "" resets it to the default.
	SetSocketCreateLabel(label string) error
	// ProcessLabelWrite tells restore what to write, from inside the
	// restored thread, to give that thread label.
	ProcessLabelWrite(label string) (LabelWrite, error)
}

// LabelWrite is a write restore injects into a task: open Path for writing
// and write Data, from the thread being labelled. An empty Path means there
// is nothing to write.
type LabelWrite struct {
	Path string
	Data []byte
}

// threadSelfCurrent names the calling thread's own context file. Restore
// opens it from inside the target, where gockpt's view of PIDs may not
// apply (the target can live in another PID namespace), so it is spelled
// without any PID.
const threadSelfCurrent = "/proc/thread-self/attr/current"

// Detect returns SELinux when it is enabled on this host, else None.
func Detect() LSM {
	if selinuxEnabled() {
		return SELinux{}
	}
	return None{}
}

// None is the implementation used when no supported module is active.
type None struct{}

// Name implements LSM.
func (None) Name() string { return "none" }

// ProcessLabel implements LSM: no module, no label.
func (None) ProcessLabel(pid int) (string, error) { return "", nil }

// SetSocketCreateLabel implements LSM: there is nothing to set, and asking
// for a label that cannot be honoured is an error.
func (None) SetSocketCreateLabel(label string) error {
	if label != "" {
		return fmt.Errorf("lsm: cannot label sockets %q: no security module active on this host", label)
	}
	return nil
}

// ProcessLabelWrite implements LSM. An image with a label cannot be restored
// faithfully here.
func (None) ProcessLabelWrite(label string) (LabelWrite, error) {
	if label != "" {
		return LabelWrite{}, fmt.Errorf("lsm: cannot restore process label %q: no security module active on this host", label)
	}
	return LabelWrite{}, nil
}

// readAttrCurrent reads /proc/PID/attr/current. The kernel answers EINVAL
// when no module provides that file's contents: that means "no label".
func readAttrCurrent(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/attr/current", pid))
	if err != nil {
		if errors.Is(err, unix.EINVAL) {
			return "", nil
		}
		return "", fmt.Errorf("lsm: task %d: read label: %w", pid, err)
	}
	b = bytes.TrimRight(b, "\x00\n")
	return string(b), nil
}
