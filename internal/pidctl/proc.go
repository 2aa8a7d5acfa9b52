package pidctl

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ErrPIDTaken matches (errors.Is) every TakenError.
var ErrPIDTaken = errors.New("PID taken")

// TakenError reports that the PID a task must get belongs to another task.
type TakenError struct {
	PID int
	// Who holds it, from /proc, e.g. "another process (sleep, PPID 1)";
	// empty if it vanished before we could look.
	Occupant string
}

func (e *TakenError) Error() string {
	who := "another process"
	if e.Occupant != "" {
		who = e.Occupant
	} else {
		// No task has it, yet the kernel will not hand it out: it still
		// names the session or process group of live processes.
		return fmt.Sprintf("PID %d is still in use as the session or process group ID of running processes (%s): stop them, or restore in a new PID namespace", e.PID, holders(e.PID))
	}
	if strings.HasPrefix(e.Occupant, "a zombie") {
		// The dumped tree itself, killed but not reaped yet: say who must.
		return fmt.Sprintf("PID %d is taken by %s: its parent must reap it (wait for it) before the PID is free", e.PID, who)
	}
	return fmt.Sprintf("PID %d is taken by %s: stop it or restore in a new PID namespace", e.PID, who)
}

// Is makes errors.Is(err, ErrPIDTaken) true.
func (e *TakenError) Is(target error) bool { return target == ErrPIDTaken }

// takenError names the task holding pid in gockpt's PID namespace.
func takenError(pid int) *TakenError {
	return &TakenError{PID: pid, Occupant: occupant(pid)}
}

// holders lists processes whose session or process group is pid.
func holders(pid int) string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 3 && (f[2] == strconv.Itoa(pid) || f[3] == strconv.Itoa(pid)) {
			out = append(out, e.Name())
			if len(out) == 5 {
				out = append(out, "...")
				break
			}
		}
	}
	if len(out) == 0 {
		return "none found"
	}
	return "PIDs " + strings.Join(out, " ")
}

func occupant(pid int) string {
	st, err := readStatus(pid)
	if err != nil {
		return ""
	}
	tgid, _ := strconv.Atoi(st["Tgid"])
	if tgid != 0 && tgid != pid {
		pst, err := readStatus(tgid)
		if err != nil {
			return fmt.Sprintf("a thread of process %d", tgid)
		}
		return fmt.Sprintf("a thread of process %d (%s, PPID %s)", tgid, pst["Name"], pst["PPid"])
	}
	if strings.HasPrefix(st["State"], "Z") {
		return fmt.Sprintf("a zombie (%s, PPID %s)", st["Name"], st["PPid"])
	}
	return fmt.Sprintf("another process (%s, PPID %s)", st["Name"], st["PPid"])
}

// pidExists says whether pid is a live task (process or thread) in gockpt's
// PID namespace; /proc/PID works for threads too, though it is not listed.
func pidExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil
}

func readStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// innermostPID is tid's PID in its own (innermost) PID namespace: the last
// NSpid field, which is what set_tid[0] and ns_last_pid decide.
func innermostPID(tid int) (int, error) {
	st, err := readStatus(tid)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(st["NSpid"])
	if len(f) == 0 {
		return tid, nil // kernel without NSpid: one namespace level
	}
	n, err := strconv.Atoi(f[len(f)-1])
	if err != nil {
		return 0, fmt.Errorf("bad NSpid line in /proc/%d/status: %q", tid, st["NSpid"])
	}
	return n, nil
}
