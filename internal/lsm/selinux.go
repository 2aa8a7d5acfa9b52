package lsm

import (
	"fmt"

	"github.com/opencontainers/selinux/go-selinux"
)

func selinuxEnabled() bool { return selinux.GetEnabled() }

// SELinux labels through opencontainers/selinux. Its methods work, and say
// "no label", on hosts where SELinux is not active.
type SELinux struct{}

// Name implements LSM.
func (SELinux) Name() string { return "selinux" }

// ProcessLabel implements LSM.
func (SELinux) ProcessLabel(pid int) (string, error) { return readAttrCurrent(pid) }

// SetSocketCreateLabel implements LSM (setsockcreatecon on the calling thread).
func (SELinux) SetSocketCreateLabel(label string) error {
	if err := selinux.SetSocketLabel(label); err != nil {
		if label == "" {
			return fmt.Errorf("lsm: reset socket creation label: %w", err)
		}
		return fmt.Errorf("lsm: set socket creation label %q: %w", label, err)
	}
	return nil
}

// ProcessLabelWrite implements LSM. SELinux takes the context as written,
// from a thread of a single-threaded task (restore writes it before creating
// other threads).
func (SELinux) ProcessLabelWrite(label string) (LabelWrite, error) {
	if label == "" {
		return LabelWrite{}, nil
	}
	return LabelWrite{Path: threadSelfCurrent, Data: []byte(label)}, nil
}
