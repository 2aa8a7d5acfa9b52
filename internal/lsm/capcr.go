package lsm

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// CAP_CHECKPOINT_RESTORE and SELinux.
//
// Every kernel check of CAP_CHECKPOINT_RESTORE (clone3 set_tid, ns_last_pid,
// PR_SET_MM_MAP with an exe_fd, following a /proc/PID/map_files link) also
// accepts CAP_SYS_ADMIN, and asks for CAP_CHECKPOINT_RESTORE first. Under a
// policy that grants a domain sys_admin but not checkpoint_restore (Debian
// 12's grants unconfined_t capability2 { bpf perfmon syslog wake_alarm }
// only), each such check logs an AVC denial and then succeeds through
// CAP_SYS_ADMIN: noise that reads like a failure in the audit log. The
// capability module answers before SELinux does, so a thread whose
// effective set lacks CAP_CHECKPOINT_RESTORE is refused it without SELinux
// being asked, and goes on to CAP_SYS_ADMIN without a denial. Leaving the
// bit out changes no outcome: it is done only where SELinux refuses it
// anyway and CAP_SYS_ADMIN is effective, and the bit stays permitted (a
// restored task can still be given it).

// CapCheckpointRestore is CAP_CHECKPOINT_RESTORE's number (Linux 5.9+).
const CapCheckpointRestore = 40

const capSysAdmin = 21

// LeaveOutCheckpointRestore says whether a thread with context label,
// in the initial user namespace, with effective capabilities eff should
// leave CAP_CHECKPOINT_RESTORE out of them: it holds it and CAP_SYS_ADMIN,
// and SELinux denies it the first and would log that.
func LeaveOutCheckpointRestore(label string, eff uint64) bool {
	return label != "" && eff&(1<<CapCheckpointRestore) != 0 && eff&(1<<capSysAdmin) != 0 &&
		auditsCheckpointRestore(label)
}

var audited sync.Map // label -> bool

// auditsCheckpointRestore asks the loaded policy, once per label, whether
// it denies capability2 checkpoint_restore to label and logs the denial.
// Any failure to ask means no: the capability is then kept, as always.
func auditsCheckpointRestore(label string) bool {
	if v, ok := audited.Load(label); ok {
		return v.(bool)
	}
	yes := false
	if selinuxEnabled() && initialUserNS() {
		d, err := selinuxDenialAudited(label, label, "capability2", "checkpoint_restore")
		yes = err == nil && d
	}
	audited.Store(label, yes)
	return yes
}

// initialUserNS says whether gockpt runs in the initial user namespace,
// where SELinux checks capabilities with class capability2 (other user
// namespaces use cap2_userns).
func initialUserNS() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && strings.Join(strings.Fields(string(b)), " ") == "0 0 4294967295"
}

// selinuxfs returns where selinuxfs is mounted.
func selinuxfs() (string, error) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "selinuxfs" {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("selinuxfs is not mounted")
}

// selinuxDenialAudited asks the policy (selinuxfs "access", what
// security_compute_av answers) whether scon is denied perm of class on
// tcon, with the denial logged (no dontaudit rule).
func selinuxDenialAudited(scon, tcon, class, perm string) (bool, error) {
	mnt, err := selinuxfs()
	if err != nil {
		return false, err
	}
	classNum, err := readNumber(mnt + "/class/" + class + "/index")
	if err != nil {
		return false, err
	}
	permNum, err := readNumber(mnt + "/class/" + class + "/perms/" + perm)
	if err != nil {
		return false, err
	}
	if permNum < 1 || permNum > 32 {
		return false, fmt.Errorf("selinuxfs: permission %s of class %s has number %d", perm, class, permNum)
	}
	f, err := os.OpenFile(mnt+"/access", os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s %d", scon, tcon, classNum); err != nil {
		return false, fmt.Errorf("selinuxfs access %s %s %s: %w", scon, tcon, class, err)
	}
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	if err != nil {
		return false, fmt.Errorf("selinuxfs access %s %s %s: %w", scon, tcon, class, err)
	}
	return parseAccess(string(buf[:n]), uint32(1)<<(permNum-1))
}

// parseAccess reads selinuxfs's access answer, "allowed decided auditallow
// auditdeny seqno flags" (hex but seqno), for the permission bit.
func parseAccess(reply string, bit uint32) (deniedAudited bool, err error) {
	f := strings.Fields(reply)
	if len(f) < 4 {
		return false, fmt.Errorf("selinuxfs access answered %q", reply)
	}
	var v [4]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i], 16, 32); err != nil {
			return false, fmt.Errorf("selinuxfs access answered %q", reply)
		}
	}
	allowed, decided, auditdeny := uint32(v[0]), uint32(v[1]), uint32(v[3])
	return decided&bit != 0 && allowed&bit == 0 && auditdeny&bit != 0, nil
}

func readNumber(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return n, nil
}

// quiet is the OS thread that runs WithoutAuditedCheckpointRestore's work:
// nil when gockpt keeps CAP_CHECKPOINT_RESTORE everywhere.
var quiet struct {
	once sync.Once
	work chan func()
}

// WithoutAuditedCheckpointRestore runs fn and returns its error. Where
// LeaveOutCheckpointRestore holds for gockpt itself, fn runs on an OS
// thread of gockpt's whose effective set lacks CAP_CHECKPOINT_RESTORE, so
// the CAP_CHECKPOINT_RESTORE checks it causes log no SELinux denial; fn
// must not start processes or lock its goroutine to the thread.
func WithoutAuditedCheckpointRestore(fn func() error) error {
	quiet.once.Do(startQuiet)
	if quiet.work == nil {
		return fn()
	}
	done := make(chan error)
	quiet.work <- func() { done <- fn() }
	return <-done
}

func startQuiet() {
	label, err := readAttrCurrent(os.Getpid())
	if err != nil {
		return
	}
	_, _, eff, err := threadCaps()
	if err != nil || !LeaveOutCheckpointRestore(label, eff) {
		return
	}
	work, err := capLessThread(CapCheckpointRestore)
	if err == nil {
		quiet.work = work
	}
}

// capLessThread starts a goroutine locked, for good, to an OS thread whose
// effective set lacks capability c, running the functions sent to it. The
// thread is never unlocked: its credentials differ from gockpt's other
// threads', and the Go runtime must not give it to other goroutines (it
// creates new threads from a clean one, never from a locked thread).
func capLessThread(c int) (chan func(), error) {
	work := make(chan func())
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		inh, prm, eff, err := threadCaps()
		if err == nil {
			err = setThreadCaps(inh, prm, eff&^(1<<c))
		}
		ready <- err
		if err != nil {
			return // the thread exits with its locked goroutine
		}
		for f := range work {
			f()
		}
	}()
	return work, <-ready
}

// threadCaps returns the calling thread's capability sets.
func threadCaps() (inh, prm, eff uint64, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, 0, fmt.Errorf("capget: %w", err)
	}
	for i, d := range data {
		inh |= uint64(d.Inheritable) << (32 * i)
		prm |= uint64(d.Permitted) << (32 * i)
		eff |= uint64(d.Effective) << (32 * i)
	}
	return inh, prm, eff, nil
}

// setThreadCaps sets the calling thread's capability sets.
func setThreadCaps(inh, prm, eff uint64) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := range data {
		data[i] = unix.CapUserData{Effective: uint32(eff >> (32 * i)), Permitted: uint32(prm >> (32 * i)), Inheritable: uint32(inh >> (32 * i))}
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}
