package restore

import (
	"fmt"

	"github.com/gockpt/gockpt/internal/images"
)

// checkTaskCore checks what the restore of a live task takes from its core
// for granted, before any task is created: one sigaction per signal from 1
// to 64 but SIGKILL and SIGSTOP, as CRIU lays them out.
func checkTaskCore(t *Task) error {
	if n := len(t.Core().GetTc().GetSigactions()); n != images.NumSigactions {
		return fmt.Errorf("task %d: %s has %d sigactions, want %d (signals 1 to %d without SIGKILL and SIGSTOP)", t.Pid, images.CoreFile(t.Pid), n, images.NumSigactions, images.SigMax)
	}
	return nil
}
