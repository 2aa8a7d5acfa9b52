package restore

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// restoreOomScoreAdj gives the task its oom_score_adj. gockpt writes it
// from outside (the task inherited its parent's); lowering it below the
// task's oom_score_adj_min needs CAP_SYS_RESOURCE in gockpt.
func restoreOomScoreAdj(t *Task) error {
	tc := t.Core().GetTc()
	if tc.OomScoreAdj == nil {
		return nil
	}
	path := fmt.Sprintf("/proc/%d/oom_score_adj", t.Pid)
	want := int64(tc.GetOomScoreAdj())
	if cur, err := readProcInt(path); err == nil && cur == want {
		return nil
	}
	if err := os.WriteFile(path, []byte(strconv.FormatInt(want, 10)), 0); err != nil {
		return fmt.Errorf("oom_score_adj %d: %w (lowering it below what the task inherits needs CAP_SYS_RESOURCE)", want, err)
	}
	return nil
}

// restoreLoginuid sets the task's audit login uid. The kernel takes it
// only from the task itself (/proc/self/loginuid), and only with
// CAP_AUDIT_CONTROL once a loginuid is set: the task writes it while it
// still has gockpt's capabilities, before its credentials are restored.
// Its threads and children are made after and inherit it.
func restoreLoginuid(t *Task, r *remote) error {
	tc := t.Core().GetTc()
	if tc.Loginuid == nil {
		return nil
	}
	want := int64(tc.GetLoginuid())
	cur, err := readProcInt(fmt.Sprintf("/proc/%d/loginuid", t.Pid))
	if err != nil {
		return fmt.Errorf("the kernel shows no loginuid (CONFIG_AUDIT off?) and the task had %d: %w", want, err)
	}
	if cur == want {
		return nil
	}
	p, err := r.str("/proc/self/loginuid")
	if err != nil {
		return err
	}
	fd, err := r.call("open /proc/self/loginuid", unix.SYS_OPENAT, uint64(unix.AT_FDCWD&0xffffffff)|0xffffffff00000000, p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer r.call("close", unix.SYS_CLOSE, fd)
	v := strconv.FormatInt(want, 10)
	d, err := r.put([]byte(v))
	if err != nil {
		return err
	}
	if _, err := r.call("write loginuid "+v, unix.SYS_WRITE, fd, d, uint64(len(v))); err != nil {
		return fmt.Errorf("%w (setting a loginuid needs CAP_AUDIT_CONTROL in gockpt, and loginuid_immutable unset)", err)
	}
	return nil
}

// restoreMembarrier registers the task's mm for the membarrier commands it
// was registered for. Registration is inherited by fork, so it is done once
// every task of the tree exists: a child made before its parent registered
// must not inherit it.
func restoreMembarrier(t *Task, r *remote) error {
	mask := t.Core().GetTc().GetMembarrierRegistrationMask()
	for bit := uint(0); bit < 32; bit++ {
		cmd := uint64(1) << bit
		if uint64(mask)&cmd == 0 {
			continue
		}
		if _, err := r.call(fmt.Sprintf("membarrier(%#x) registration", cmd), unix.SYS_MEMBARRIER, cmd, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

func readProcInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
