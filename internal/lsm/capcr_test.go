package lsm

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestParseAccess(t *testing.T) {
	const bit = 1 << 7 // checkpoint_restore is permission 8 of capability2 in refpolicy
	for _, c := range []struct {
		reply string
		want  bool
	}{
		// Debian 12's unconfined_t: bpf perfmon syslog wake_alarm only.
		{"58 ffffffff 0 ffffffff 11 0", true},
		{"58 ffffffff 0 ffffffff 11 1", true}, // permissive domain: still logged
		{"d8 ffffffff 0 ffffffff 11 0", false},
		{"58 ffffffff 0 ffffff7f 11 0", false}, // dontaudit
		{"58 ffffff7f 0 ffffffff 11 0", false}, // not decided
	} {
		got, err := parseAccess(c.reply, bit)
		if err != nil || got != c.want {
			t.Errorf("parseAccess(%q) = %v, %v; want %v", c.reply, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "58 ffffffff 0", "58 zz 0 ffffffff 11 0"} {
		if _, err := parseAccess(bad, bit); err == nil || err.Error() != fmt.Sprintf("selinuxfs access answered %q", bad) {
			t.Errorf("parseAccess(%q): %v", bad, err)
		}
	}
}

func TestLeaveOutCheckpointRestore(t *testing.T) {
	const both = 1<<CapCheckpointRestore | 1<<capSysAdmin
	for _, c := range []struct {
		label string
		eff   uint64
	}{
		{"", both},
		{"system_u:system_r:gockpt_test_t:s0", 1 << CapCheckpointRestore}, // no CAP_SYS_ADMIN to fall back on
		{"system_u:system_r:gockpt_test_t:s0", 1 << capSysAdmin},          // nothing to leave out
	} {
		if LeaveOutCheckpointRestore(c.label, c.eff) {
			t.Errorf("LeaveOutCheckpointRestore(%q, %#x) = true", c.label, c.eff)
		}
	}
	if !selinuxEnabled() && LeaveOutCheckpointRestore("system_u:system_r:gockpt_test_t:s0", both) {
		t.Error("without SELinux, CAP_CHECKPOINT_RESTORE was left out")
	}
}

// capEffPrm reads CapEff and CapPrm of the calling thread from /proc.
func capEffPrm() (eff, prm uint64, err error) {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && (f[0] == "CapEff:" || f[0] == "CapPrm:") {
			v, err := strconv.ParseUint(f[1], 16, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: %w", l, err)
			}
			if f[0] == "CapEff:" {
				eff = v
			} else {
				prm = v
			}
		}
	}
	return eff, prm, nil
}

// TestCapLessThread: work sent to the thread runs without
// CAP_CHECKPOINT_RESTORE in its effective set (still permitted), while
// other threads keep it, and a kernel check of CAP_CHECKPOINT_RESTORE made
// there (following a map_files link) still passes through CAP_SYS_ADMIN.
func TestCapLessThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	eff, _, err := capEffPrm()
	if err != nil {
		t.Fatal(err)
	}
	const both = 1<<CapCheckpointRestore | 1<<capSysAdmin
	if eff&both != both {
		t.Skipf("needs CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE (Linux 5.9+) effective; CapEff is %#x", eff)
	}
	work, err := capLessThread(CapCheckpointRestore)
	if err != nil {
		t.Fatal(err)
	}
	defer close(work)
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	var link string
	for _, l := range strings.Split(string(maps), "\n") {
		f := strings.Fields(l)
		if len(f) != 6 || !strings.HasPrefix(f[5], "/") {
			continue
		}
		var start, end uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &start, &end); err != nil {
			t.Fatal(err)
		}
		link = fmt.Sprintf("/proc/self/map_files/%x-%x", start, end)
		break
	}
	if link == "" {
		t.Fatal("no file mapping in /proc/self/maps")
	}
	type result struct {
		eff, prm        uint64
		capErr, statErr error
	}
	res := make(chan result)
	for i := 0; i < 3; i++ {
		work <- func() {
			var r result
			r.eff, r.prm, r.capErr = capEffPrm()
			_, r.statErr = os.Stat(link)
			res <- r
		}
		r := <-res
		if r.capErr != nil {
			t.Fatal(r.capErr)
		}
		if r.eff != eff&^(1<<CapCheckpointRestore) || r.prm&(1<<CapCheckpointRestore) == 0 {
			t.Fatalf("work thread: CapEff %#x CapPrm %#x; want CapEff %#x with CAP_CHECKPOINT_RESTORE still permitted", r.eff, r.prm, eff&^(1<<CapCheckpointRestore))
		}
		if r.statErr != nil {
			t.Fatalf("stat %s without CAP_CHECKPOINT_RESTORE: %v", link, r.statErr)
		}
	}
	if now, _, _ := capEffPrm(); now != eff {
		t.Fatalf("the caller's thread: CapEff %#x, was %#x", now, eff)
	}
}
