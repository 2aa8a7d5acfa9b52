package dump

import (
	"bytes"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v8/crit"
)

// TestGoCriuReadsOurDump: what checkpointctl and runc use to look into a
// checkpoint (go-criu's crit) reads a real gockpt dump: the process's
// arguments, its memory patterns and the dump statistics.
func TestGoCriuReadsOurDump(t *testing.T) {
	p := startPatterns(t, 0, 0)
	d := dumpLeaveRunning(t, p.Pid)
	mr, err := crit.NewMemoryReader(d.Path(), uint32(p.Pid), 4096)
	if err != nil {
		t.Fatal(err)
	}
	args, err := mr.GetPsArgs()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(args.String(), p.dir) {
		t.Errorf("go-criu reads the arguments as %q", args)
	}
	mem, err := mr.GetMemPages(p.anon, p.anon+64<<10)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64<<10)
	for i := range want {
		want[i] = pat(uint64(i), 1)
	}
	if !bytes.Equal(mem.Bytes(), want) {
		t.Error("go-criu reads other bytes than the anonymous pattern")
	}
	st, err := crit.GetDumpStats(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.GetPagesWritten() == 0 || st.GetFrozenTime() == 0 {
		t.Errorf("go-criu reads the dump stats as %v", st)
	}
}
