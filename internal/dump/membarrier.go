package dump

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/ptrace"
)

// membarrier(2) commands (include/uapi/linux/membarrier.h).
const (
	membarrierPrivateExpedited         = 1 << 3
	membarrierPrivateExpeditedSyncCore = 1 << 5
	membarrierPrivateExpeditedRseq     = 1 << 7
)

// membarrierRegistrations says which membarrier commands the task's mm is
// registered for, as a mask of MEMBARRIER_CMD_REGISTER_* bits: CRIU's
// membarrier_registration_mask. ret is what the task answered to
// MEMBARRIER_CMD_GET_REGISTRATIONS (through the parasite; Linux 6.3+).
// Before 6.3, as CRIU does, each private expedited barrier is issued in
// the leader: it succeeds only once registered, and its registration
// command is the next bit.
func membarrierRegistrations(ret uint64, leader *ptrace.Tracee) (uint32, error) {
	e := ptrace.Errno(ret)
	if e == 0 {
		return uint32(ret), nil
	}
	if !errors.Is(e, unix.EINVAL) && !errors.Is(e, unix.ENOSYS) {
		return 0, fmt.Errorf("membarrier(MEMBARRIER_CMD_GET_REGISTRATIONS): %w", e)
	}
	var mask uint32
	for _, cmd := range []uint64{membarrierPrivateExpedited, membarrierPrivateExpeditedSyncCore, membarrierPrivateExpeditedRseq} {
		ret, err := leader.Syscall(unix.SYS_MEMBARRIER, cmd, 0, 0)
		if err != nil {
			return 0, err
		}
		switch e := ptrace.Errno(ret); {
		case e == 0:
			mask |= uint32(cmd) << 1
		case errors.Is(e, unix.EPERM), errors.Is(e, unix.EINVAL), errors.Is(e, unix.ENOSYS):
		default:
			return 0, fmt.Errorf("membarrier(%#x): %w", cmd, e)
		}
	}
	return mask, nil
}
