package files

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/proc"
	pb "github.com/gockpt/gockpt/proto"
)

// TestParseTimerfd: the fields of a timerfd's fdinfo, as Linux 6.x prints
// them, and what is refused.
func TestParseTimerfd(t *testing.T) {
	text := "pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1038\nclockid: 0\nticks: 3\nsettime flags: 03\n" +
		"it_value: (2999, 999924438)\nit_interval: (100, 5)\n"
	fi, err := proc.ParseFdinfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseTimerfd(fi.Fields)
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.TimerfdEntry{Clockid: u32(0), Ticks: u64(3), SettimeFlags: u32(3), Vsec: u64(2999), Vnsec: u64(999924438), Isec: u64(100), Insec: u64(5)}
	if !proto.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	for _, bad := range []map[string]string{
		{},
		{"clockid": "1", "ticks": "0", "settime flags": "08", "it_value": "(0, 0)", "it_interval": "(0, 0)"},
		{"clockid": "1", "ticks": "0", "settime flags": "00", "it_value": "(0, 1000000000)", "it_interval": "(0, 0)"},
		{"clockid": "1", "ticks": "0", "settime flags": "00", "it_value": "0, 0", "it_interval": "(0, 0)"},
		{"clockid": "1", "ticks": "-1", "settime flags": "00", "it_value": "(0, 0)", "it_interval": "(0, 0)"},
		{"clockid": "1", "ticks": "0", "settime flags": "00", "it_value": "(0 0)", "it_interval": "(0, 0)"},
		{"clockid": "4294967296", "ticks": "0", "settime flags": "00", "it_value": "(0, 0)", "it_interval": "(0, 0)"},
	} {
		if e, err := parseTimerfd(bad); err == nil {
			t.Errorf("%v: accepted as %v", bad, e)
		}
	}
}

// FuzzParseTimerfd: fdinfo text is the kernel's, but parsing must never
// panic, and what is accepted holds times a timespec can.
func FuzzParseTimerfd(f *testing.F) {
	f.Add("1", "0", "00", "(99, 991403570)", "(1, 0)")
	f.Add("7", "18446744073709551615", "03", "(0, 0)", "(0, 0)")
	f.Fuzz(func(t *testing.T, clock, ticks, flags, value, interval string) {
		e, err := parseTimerfd(map[string]string{"clockid": clock, "ticks": ticks, "settime flags": flags, "it_value": value, "it_interval": interval})
		if err != nil {
			return
		}
		if e.GetVnsec() >= 1e9 || e.GetInsec() >= 1e9 || e.GetVsec() >= 1<<63 || e.GetIsec() >= 1<<63 {
			t.Errorf("accepted %q %q as %v", value, interval, e)
		}
	})
}
