package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gockpt/gockpt/internal/testproc"
)

// clock is a fake clock the test moves by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestBar(label string) (*Bar, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(1_000_000, 0)}
	return New(&buf, label, time.Second, c.now), &buf, c
}

// take returns what was drawn since the last call.
func take(buf *bytes.Buffer) string {
	s := buf.String()
	buf.Reset()
	return s
}

func TestText(t *testing.T) {
	for _, c := range []struct {
		done, total uint64
		elapsed     time.Duration
		want        string
	}{
		{0, 1000, 3 * time.Second, "Dumping: 0/1000 pages"},
		// 25600 pages are 104.8576 MB; in 2 s, 52.4 MB/s; as many left.
		{25600, 51200, 2 * time.Second, "Dumping: 25600/51200 pages, 52.4 MB/s, 2s left"},
		{100, 100 + 100*90, time.Second, "Dumping: 100/9100 pages, 0.4 MB/s, 1m30s left"},
		{1, 1 + 7500, time.Second, "Dumping: 1/7501 pages, 0.0 MB/s, 2h05m left"},
		// Done: no time left to tell.
		{5000, 5000, 4 * time.Second, "Dumping: 5000/5000 pages, 5.1 MB/s"},
		// Half a second left rounds up.
		{1000, 1500, time.Second, "Dumping: 1000/1500 pages, 4.1 MB/s, 1s left"},
	} {
		if got := Text("Dumping", c.done, c.total, c.elapsed); got != c.want {
			t.Errorf("Text(%d, %d, %v) = %q, want %q", c.done, c.total, c.elapsed, got, c.want)
		}
	}
}

// TestBarDelay: an operation shorter than the delay draws nothing, not
// even the clearing of a line.
func TestBarDelay(t *testing.T) {
	b, buf, c := newTestBar("Dumping")
	b.AddTotal(1000)
	b.Add(10)
	c.advance(999 * time.Millisecond)
	b.Add(10)
	b.Refresh()
	b.Finish()
	if buf.Len() != 0 {
		t.Fatalf("drawn before the delay: %q", buf.String())
	}
}

// TestBarDraws: the exact line for a state, redrawn at most every 100 ms,
// cleared by Finish, and nothing after that.
func TestBarDraws(t *testing.T) {
	b, buf, c := newTestBar("Restoring")
	b.AddTotal(51200)
	c.advance(2 * time.Second)
	b.Add(25600)
	want := "\r  50% |███████████████               |  Restoring: 25600/51200 pages, 52.4 MB/s, 2s left \x1b[0K"
	if got := take(buf); got != want {
		t.Fatalf("drew\n%q\nwant\n%q", got, want)
	}
	c.advance(50 * time.Millisecond)
	b.Add(5120)
	if got := take(buf); got != "" {
		t.Fatalf("drew again within 100 ms: %q", got)
	}
	c.advance(50 * time.Millisecond)
	b.Refresh()
	// The percentage changed: the new text is drawn, then the new bar.
	want = "\r  50% |███████████████               |  Restoring: 30720/51200 pages, 59.9 MB/s, 1s left \x1b[0K" +
		"\r  60% |██████████████████            |  Restoring: 30720/51200 pages, 59.9 MB/s, 1s left \x1b[0K"
	if got := take(buf); got != want {
		t.Fatalf("drew\n%q\nwant\n%q", got, want)
	}
	// Nothing new but time: the rate falls, the time left grows.
	c.advance(2100 * time.Millisecond)
	b.Refresh()
	want = "\r  60% |██████████████████            |  Restoring: 30720/51200 pages, 30.0 MB/s, 3s left \x1b[0K"
	if got := take(buf); got != want {
		t.Fatalf("drew\n%q\nwant\n%q", got, want)
	}
	b.Finish()
	if got := take(buf); got != "\x1b[2K\r" {
		t.Fatalf("Finish drew %q, want the line cleared", got)
	}
	c.advance(time.Second)
	b.Add(100)
	b.Refresh()
	b.Finish()
	if got := take(buf); got != "" {
		t.Fatalf("drew after Finish: %q", got)
	}
}

// lastLine is the last line drawn in s.
func lastLine(s string) string { return s[strings.LastIndex(s, "\r"):] }

// TestBarGrowingTotal: a dump learns its total task by task; catching up
// with it does not end (or clear) the bar, which goes on when the total
// grows.
func TestBarGrowingTotal(t *testing.T) {
	b, buf, c := newTestBar("Dumping")
	c.advance(time.Second)
	b.Add(0)
	if got := take(buf); got != "" {
		t.Fatalf("drew with no total: %q", got)
	}
	b.AddTotal(1000)
	if got, want := take(buf), "\r   0% |                              |  Dumping: 0/1000 pages \x1b[0K"; got != want {
		t.Fatalf("drew\n%q\nwant\n%q", got, want)
	}
	c.advance(time.Second)
	b.Add(1000)
	got := take(buf)
	if want := "\r  99% |█████████████████████████████ |  Dumping: 1000/1000 pages, 2.0 MB/s \x1b[0K"; lastLine(got) != want || strings.Contains(got, "\x1b[2K") {
		t.Fatalf("drew\n%q\nwant it to end with\n%q", got, want)
	}
	c.advance(time.Second)
	b.AddTotal(1000)
	got = take(buf)
	if want := "\r  50% |███████████████               |  Dumping: 1000/2000 pages, 1.4 MB/s, 3s left \x1b[0K"; lastLine(got) != want {
		t.Fatalf("drew\n%q\nwant it to end with\n%q", got, want)
	}
	b.Finish()
}

// TestNilBar: the Bar of a command whose stderr is not a terminal is nil,
// and is no Sink at all.
func TestNilBar(t *testing.T) {
	var b *Bar
	b.AddTotal(1)
	b.Add(1)
	b.Refresh()
	b.Finish()
	if b.Sink() != nil {
		t.Fatal("a nil Bar gave a Sink")
	}
	if Start(&bytes.Buffer{}, "Dumping", 0) != nil {
		t.Fatal("a Bar started on a buffer")
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	pty := testproc.OpenPty(t)
	for _, c := range []struct {
		name string
		w    io.Writer
		want bool
	}{
		{"buffer", &bytes.Buffer{}, false},
		{"pipe", w, false},
		{"/dev/null", null, false},
		{"pty", pty.Tty, true},
	} {
		if got := IsTerminal(c.w); got != c.want {
			t.Errorf("IsTerminal(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestStartOnTerminal: a started Bar on a terminal draws once the delay
// (here none) has passed, and Finish stops its redrawing and clears the line.
func TestStartOnTerminal(t *testing.T) {
	pty := testproc.OpenPty(t)
	b := Start(pty.Tty, "Pre-dumping", 0)
	if b == nil {
		t.Fatal("no Bar on a terminal")
	}
	b.AddTotal(10)
	b.Finish()
	b.Add(10)
	out := pty.Output()
	want := "\r   0% |                              |  Pre-dumping: 0/10 pages \x1b[0K"
	if !strings.HasPrefix(out, want) || !strings.HasSuffix(out, "\x1b[2K\r") || strings.Contains(out, "10/10") {
		t.Fatalf("terminal got\n%q\nwant it to start with\n%q\nand end with the line cleared", out, want)
	}
}
