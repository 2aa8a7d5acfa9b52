package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// timerfdKind is timerfd_create(2): its clock, settime flags, interval,
// the time left to the next expiration and the expirations not read yet.
//
// The image holds the time left, as CRIU's does: restore arms the timer
// with it, so the time between dump and restore does not count (the
// timer stands still while the tree is not running), also for
// TFD_TIMER_ABSTIME timers, re-armed at now + time left on their clock.
type timerfdKind struct{ kindBase }

func newTimerfdKind() Kind { return &timerfdKind{} }

func (*timerfdKind) Type() pb.FdTypes { return pb.FdTypes_TIMERFD }

func (*timerfdKind) Match(s *fdState) bool { return s.target == "anon_inode:[timerfd]" }

// Check refuses a timer set with TFD_TIMER_CANCEL_ON_SET that has unread
// expirations: the kernel counts a change of the clock as one too (read
// then fails with ECANCELED) and nothing outside tells the two apart.
func (*timerfdKind) Check(c *Checker, s *fdState) error {
	e, err := parseTimerfd(s.info.Fields)
	if err != nil {
		return fmt.Errorf("task %d fd %d: timerfd fdinfo: %w", s.pid, s.fd, err)
	}
	return c.checkTimerfd(s, e)
}

func (c *Checker) checkTimerfd(s *fdState, e *pb.TimerfdEntry) error {
	if e.GetSettimeFlags()&unix.TFD_TIMER_CANCEL_ON_SET != 0 && e.GetTicks() != 0 {
		r := c.refuse(s, support.TimerfdCancelTicks, s.target)
		r.Detail = fmt.Sprintf("set with TFD_TIMER_CANCEL_ON_SET, %d unread ticks (expirations or clock changes)", e.GetTicks())
		return r
	}
	return nil
}

// parseTimerfd reads a timerfd's fdinfo fields: "clockid: 1", "ticks: 0",
// "settime flags: 01" (octal), "it_value: (99, 991403570)", "it_interval:
// (1, 0)".
func parseTimerfd(f map[string]string) (*pb.TimerfdEntry, error) {
	num := func(key string, base int) (uint64, error) {
		v, ok := f[key]
		if !ok {
			return 0, fmt.Errorf("no %s", key)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), base, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %q: %w", key, v, err)
		}
		return n, nil
	}
	clock, err := num("clockid", 10)
	if err != nil {
		return nil, err
	}
	ticks, err := num("ticks", 10)
	if err != nil {
		return nil, err
	}
	flags, err := num("settime flags", 8)
	if err != nil {
		return nil, err
	}
	vs, vns, err := parseTimespec(f, "it_value")
	if err != nil {
		return nil, err
	}
	is, ins, err := parseTimespec(f, "it_interval")
	if err != nil {
		return nil, err
	}
	if clock > 0xffffffff || flags > 0xffffffff {
		return nil, fmt.Errorf("clockid %d or settime flags %#o out of range", clock, flags)
	}
	return &pb.TimerfdEntry{
		Clockid: proto.Uint32(uint32(clock)), Ticks: proto.Uint64(ticks), SettimeFlags: proto.Uint32(uint32(flags)),
		Vsec: proto.Uint64(vs), Vnsec: proto.Uint64(vns), Isec: proto.Uint64(is), Insec: proto.Uint64(ins),
	}, nil
}

// parseTimespec reads "(sec, nsec)".
func parseTimespec(f map[string]string, key string) (sec, nsec uint64, err error) {
	v, ok := f[key]
	if !ok {
		return 0, 0, fmt.Errorf("no %s", key)
	}
	in, open := strings.CutPrefix(strings.TrimSpace(v), "(")
	in, closed := strings.CutSuffix(in, ")")
	if !open || !closed {
		return 0, 0, fmt.Errorf("%s %q: want (sec, nsec)", key, v)
	}
	a, b, ok := strings.Cut(in, ",")
	if !ok {
		return 0, 0, fmt.Errorf("%s %q: want (sec, nsec)", key, v)
	}
	if sec, err = strconv.ParseUint(strings.TrimSpace(a), 10, 63); err != nil {
		return 0, 0, fmt.Errorf("%s %q: %w", key, v, err)
	}
	if nsec, err = strconv.ParseUint(strings.TrimSpace(b), 10, 63); err != nil || nsec >= 1e9 {
		return 0, 0, fmt.Errorf("%s %q: bad nanoseconds", key, v)
	}
	return sec, nsec, nil
}

// Dump reads the timer of the frozen task. A periodic timer past its
// expiration but not read since shows no time left and one tick in
// fdinfo: the kernel moves it on to its next expiration, counting the
// periods missed, only when someone reads it or asks timerfd_gettime. So
// dump asks timerfd_gettime on its own copy of the file first (what a
// read would count is the same either way), then reads fdinfo.
func (*timerfdKind) Dump(d *Dumper, o object) error {
	dup, err := d.Checker.dup(o.pid, o.fd)
	if err != nil {
		return err
	}
	var cur unix.ItimerSpec
	err = unix.TimerfdGettime(dup, &cur)
	unix.Close(dup)
	if err != nil {
		return fmt.Errorf("task %d fd %d: timerfd_gettime: %w", o.pid, o.fd, err)
	}
	info, err := proc.ReadFdinfo(o.pid, o.fd)
	if err != nil {
		return err
	}
	e, err := parseTimerfd(info.Fields)
	if err != nil {
		return fmt.Errorf("task %d fd %d: timerfd fdinfo: %w", o.pid, o.fd, err)
	}
	if err := d.Checker.checkTimerfd(&fdState{pid: o.pid, fd: o.fd, target: o.target}, e); err != nil {
		return err
	}
	e.Id, e.Flags, e.Fown = proto.Uint32(o.id), proto.Uint32(o.flags()), o.own
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_TIMERFD.Enum(), Id: proto.Uint32(o.id), Tfd: e})
	return nil
}

// Open makes the timer, arms it with the time it had left and puts back
// the expirations not read (TFD_IOC_SET_TICKS, after arming, which clears
// them).
func (*timerfdKind) Open(_ *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetTfd()
	if e.GetVnsec() >= 1e9 || e.GetInsec() >= 1e9 || e.GetVsec() > 1<<62 || e.GetIsec() > 1<<62 {
		return nil, fmt.Errorf("timerfd: bad time it_value (%d, %d) it_interval (%d, %d) in the image", e.GetVsec(), e.GetVnsec(), e.GetIsec(), e.GetInsec())
	}
	fd, err := unix.TimerfdCreate(int(e.GetClockid()), int(e.GetFlags())&unix.O_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create(clock %d): %w", e.GetClockid(), err)
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	val := unix.ItimerSpec{
		Value:    unix.Timespec{Sec: int64(e.GetVsec()), Nsec: int64(e.GetVnsec())},
		Interval: unix.Timespec{Sec: int64(e.GetIsec()), Nsec: int64(e.GetInsec())},
	}
	flags := int(e.GetSettimeFlags()) & (unix.TFD_TIMER_ABSTIME | unix.TFD_TIMER_CANCEL_ON_SET)
	if flags&unix.TFD_TIMER_ABSTIME != 0 && val.Value != (unix.Timespec{}) {
		var now unix.Timespec
		if err := unix.ClockGettime(int32(e.GetClockid()), &now); err != nil {
			f.Close()
			return nil, fmt.Errorf("timerfd: clock_gettime(%d): %w", e.GetClockid(), err)
		}
		val.Value.Sec += now.Sec
		val.Value.Nsec += now.Nsec
		if val.Value.Nsec >= 1e9 {
			val.Value.Sec++
			val.Value.Nsec -= 1e9
		}
	}
	if err := unix.TimerfdSettime(fd, flags, &val, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("timerfd_settime(flags %#o, it_value (%d, %d), it_interval (%d, %d)): %w",
			flags, val.Value.Sec, val.Value.Nsec, val.Interval.Sec, val.Interval.Nsec, err)
	}
	if t := e.GetTicks(); t != 0 {
		if err := setTimerfdTicks(fd, t); err != nil {
			f.Close()
			return nil, fmt.Errorf("timerfd: TFD_IOC_SET_TICKS %d: %w", t, err)
		}
	}
	return f, nil
}

func (*timerfdKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetTfd().GetFown(), e.GetTfd().GetFlags()
}

func (*timerfdKind) Describe(e *pb.FileEntry) string {
	t := e.GetTfd()
	return fmt.Sprintf("timerfd clock %d, %d.%09d s left, every %d.%09d s, %d ticks", t.GetClockid(),
		t.GetVsec(), t.GetVnsec(), t.GetIsec(), t.GetInsec(), t.GetTicks())
}
