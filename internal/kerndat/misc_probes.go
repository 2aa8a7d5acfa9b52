package kerndat

import (
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"
)

func probePidfdGetfd() Result {
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	defer w.Close()
	h, err := startHelper(r) // the pipe's read end is the helper's fd 3
	if err != nil {
		return fail(err)
	}
	defer h.stop()
	pidfd, err := unix.PidfdOpen(h.Pid, 0)
	if err != nil {
		res := fail(fmt.Errorf("pidfd_open(%d): %w", h.Pid, err))
		if errnoOf(err) == unix.ENOSYS {
			res.Detail += " (Linux 5.3+ needed)"
		}
		return res
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, 3, 0)
	if err != nil {
		res := fail(fmt.Errorf("pidfd_getfd(task %d, fd 3): %w", h.Pid, err))
		switch errnoOf(err) {
		case unix.ENOSYS:
			res.Detail += " (Linux 5.6+ needed)"
		case unix.EPERM:
			res.Detail += " (ptrace access to the task needed)"
		}
		return res
	}
	defer unix.Close(fd)
	var got, want unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		return fail(err)
	}
	if err := unix.Fstat(int(r.Fd()), &want); err != nil {
		return fail(err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return failf("pidfd_getfd(task %d, fd 3) gave inode %d:%d, the pipe we passed is %d:%d", h.Pid, got.Dev, got.Ino, want.Dev, want.Ino)
	}
	return ok("took task %d's fd 3 and found the same pipe (inode %d)", h.Pid, got.Ino)
}

func probeSELinux() Result {
	_, attrErr := os.ReadFile("/proc/self/attr/current")
	if !selinux.GetEnabled() {
		why := []string{}
		if attrErr != nil {
			why = append(why, fmt.Sprintf("/proc/self/attr/current: %v", errnoOrErr(attrErr)))
		}
		if _, err := os.Stat("/sys/fs/selinux/enforce"); err != nil {
			why = append(why, "no selinuxfs mounted")
		}
		if configOption("CONFIG_SECURITY_SELINUX") == "y" {
			lsm := configOption("CONFIG_LSM")
			if !strings.Contains(","+lsm+",", ",selinux,") {
				why = append(why, fmt.Sprintf("compiled in (CONFIG_SECURITY_SELINUX=y) but not in the active LSM list CONFIG_LSM=%q and not enabled at boot", lsm))
			} else {
				why = append(why, "compiled in but not enabled (disabled at boot or no policy loaded)")
			}
		} else if configOption("CONFIG_SECURITY_SELINUX") == "n" {
			why = append(why, "CONFIG_SECURITY_SELINUX is not set in this kernel")
		}
		why = append(why, "labels are neither dumped nor restored")
		return Result{State: "not active", Detail: strings.Join(why, "; "), Err: fmt.Errorf("SELinux is not active")}
	}
	label, err := selinux.CurrentLabel()
	if err != nil {
		return fail(fmt.Errorf("SELinux is enabled but our label is unreadable: %w", err))
	}
	state := "permissive"
	if selinux.EnforceMode() == selinux.Enforcing {
		state = "enforcing"
	}
	return Result{Supported: true, State: state, Summary: label,
		Detail: fmt.Sprintf("SELinux is %s; gockpt runs as %s; labels are dumped and restored", state, label)}
}

// errnoOrErr prefers the bare errno, which reads better than a path error
// repeating the path.
func errnoOrErr(err error) error {
	if e := errnoOf(err); e != 0 {
		return e
	}
	return err
}

const capSysResource = 24

func probeCapSysResource() Result {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fail(fmt.Errorf("capget: %w", err))
	}
	if data[0].Effective&(1<<capSysResource) != 0 {
		return ok("CAP_SYS_RESOURCE is in the effective set: single PR_SET_MM_* calls and rlimits above hard limits are available")
	}
	where := "not in the effective set"
	if data[0].Permitted&(1<<capSysResource) == 0 {
		where = "not in the effective or permitted set"
	}
	return failf("CAP_SYS_RESOURCE is %s: single PR_SET_MM_* calls and raising rlimits above their hard limits are unavailable; restore uses PR_SET_MM_MAP, which works without it", where)
}
