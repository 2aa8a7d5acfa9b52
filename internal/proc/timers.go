package proc

import (
	"bytes"
	"io"
)

// PosixTimer is one timer of /proc/PID/timers (timer_create(2)). The kernel
// prints these four lines per timer; the timer's time and overrun come from
// timer_gettime in the task, not from here.
type PosixTimer struct {
	ID         int
	Signal     int    // sigev_signo
	SigevValue uint64 // sigev_value, as a pointer
	Notify     string // "signal", "none" or "thread"
	ThreadID   bool   // SIGEV_THREAD_ID: the target is a thread ("tid"), not the process ("pid")
	NotifyPID  int    // target thread or process
	ClockID    int
}

// ParseTimers parses /proc/PID/timers.
func ParseTimers(r io.Reader) ([]PosixTimer, error) {
	var timers []PosixTimer
	seen := 0 // bit per line of the current timer: ID, signal, notify, ClockID
	const all = 0xf
	sc := newLineScanner(r, "timers")
	for sc.Scan() {
		key, val, ok := cutByte(sc.Bytes(), ':')
		if !ok {
			return nil, sc.errorf("line %q has no ':'", sc.Bytes())
		}
		val = trimSpace(val)
		if string(key) == "ID" {
			if len(timers) > 0 && seen != all {
				return nil, sc.errorf("timer %d is incomplete", timers[len(timers)-1].ID)
			}
			id, ok := parseInt(val)
			if !ok {
				return nil, sc.errorf("bad ID %q", val)
			}
			timers = append(timers, PosixTimer{ID: id})
			seen = 1
			continue
		}
		if len(timers) == 0 {
			return nil, sc.errorf("%q before the first ID line", key)
		}
		t := &timers[len(timers)-1]
		switch string(key) {
		case "signal":
			// "14/000000000000dead": signo / sigev_value
			sig, v, ok := cutByte(val, '/')
			var ok1, ok2 bool
			t.Signal, ok1 = parseInt(sig)
			t.SigevValue, ok2 = parseUint(v, 16, 64)
			if !ok || !ok1 || !ok2 {
				return nil, sc.errorf("bad signal %q, want signo/value", val)
			}
			seen |= 2
		case "notify":
			// "signal/pid.1234", "none/pid.1234", "thread/tid.1234"
			how, target, ok := cutByte(val, '/')
			kind, pid, ok1 := cutByte(target, '.')
			var ok2 bool
			t.NotifyPID, ok2 = parseInt(pid)
			if !ok || !ok1 || !ok2 || len(how) == 0 || (string(kind) != "pid" && string(kind) != "tid") {
				return nil, sc.errorf("bad notify %q, want how/pid.N or how/tid.N", val)
			}
			t.Notify = notifyName(how)
			t.ThreadID = string(kind) == "tid"
			seen |= 4
		case "ClockID":
			if t.ClockID, ok = parseInt(val); !ok {
				return nil, sc.errorf("bad ClockID %q", val)
			}
			seen |= 8
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(timers) > 0 && seen != all {
		return nil, parseErrorf("timers", sc.n, "timer %d is incomplete", timers[len(timers)-1].ID)
	}
	return timers, nil
}

// notifyName avoids allocating for the names the kernel prints.
func notifyName(b []byte) string {
	for _, s := range []string{"signal", "none", "thread"} {
		if bytes.Equal(b, []byte(s)) {
			return s
		}
	}
	return string(b)
}

// ReadTimers reads /proc/PID/timers.
func ReadTimers(pid int) ([]PosixTimer, error) {
	return parseFile(Path(pid, "timers"), ParseTimers)
}
