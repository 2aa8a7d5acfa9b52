// Package progress shows how far a long operation is, on a terminal: pages
// done of the total, MB/s and the time left, as one line on stderr that is
// cleared before the command prints its result.
//
// The operations report through a Sink and know nothing of terminals: dump,
// pre-dump and restore today; the page server and the lazy-pages daemon take
// the same Sink for their transfers (AddTotal when a transfer learns what it
// will move, Add as pages go over the wire or are pushed into a task).
// Sinks are safe for concurrent use: tasks may move pages in parallel.
//
// A Bar draws nothing for the first second (Delay): a short operation leaves
// no trace. The drawing itself is schollz/progressbar's; the numbers beside
// it are computed here from the Bar's clock, so a test can give a fake one.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
)

// Sink hears how many pages an operation moves.
type Sink interface {
	// AddTotal adds pages the operation now knows it will move (a dump
	// learns its total task by task).
	AddTotal(pages uint64)
	// Add reports pages moved.
	Add(pages uint64)
}

// Discard is the Sink of an operation nobody watches.
var Discard Sink = discard{}

type discard struct{}

func (discard) AddTotal(uint64) {}
func (discard) Add(uint64)      {}

// PageSize is the size of the pages a Sink counts.
const PageSize = 4096

// Delay is how long an operation runs before its bar appears.
const Delay = time.Second

const (
	// throttle is the shortest time between two draws.
	throttle = 100 * time.Millisecond
	// tick is how often a started Bar redraws without news (a stall
	// between tasks), so MB/s and the time left stay true.
	tick = 250 * time.Millisecond
	// width is the bar's width in cells; progressbar narrows it to
	// fit the terminal.
	width = 30
)

// Bar is a Sink that draws a progress line to w once Delay has passed.
// Its methods may be called on a nil *Bar, which does nothing.
type Bar struct {
	w     io.Writer
	label string
	delay time.Duration
	now   func() time.Time

	mu       sync.Mutex
	start    time.Time
	total    uint64
	done     uint64
	pb       *progressbar.ProgressBar // nil until first drawn
	pbMax    int64
	lastDraw time.Time
	finished bool

	stop    chan struct{}
	stopped chan struct{}
}

// New returns a Bar drawing to w, labelled ("Dumping"), that starts
// drawing delay after now() (the clock; time.Now outside tests). It
// draws only when told of progress or asked to Refresh.
func New(w io.Writer, label string, delay time.Duration, now func() time.Time) *Bar {
	return &Bar{w: w, label: label, delay: delay, now: now, start: now()}
}

// Start returns a Bar on stderr when stderr is a terminal, redrawing on
// its own every quarter second, or nil (nothing shown) when it is not a
// terminal. Finish stops it.
func Start(stderr io.Writer, label string, delay time.Duration) *Bar {
	if !IsTerminal(stderr) {
		return nil
	}
	b := New(stderr, label, delay, time.Now)
	b.stop, b.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(b.stopped)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.Refresh()
			}
		}
	}()
	return b
}

// IsTerminal says whether w is a file on a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Sink returns b as a Sink: nil (no Sink) for a nil Bar.
func (b *Bar) Sink() Sink {
	if b == nil {
		return nil
	}
	return b
}

// AddTotal implements Sink.
func (b *Bar) AddTotal(pages uint64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += pages
	b.draw()
}

// Add implements Sink.
func (b *Bar) Add(pages uint64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += pages
	b.draw()
}

// Refresh draws the line if it is due: after the delay, not more often
// than ten times a second.
func (b *Bar) Refresh() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw()
}

// Finish clears the line, if one was drawn, so that what the command
// prints next starts on a clean line; nothing is drawn after it.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	if b.stop != nil {
		close(b.stop)
		<-b.stopped
		b.stop = nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	if b.pb != nil {
		b.pb.Clear()
	}
}

// draw draws the line if it is due. Called with b.mu held.
func (b *Bar) draw() {
	if b.finished || b.total == 0 {
		return
	}
	now := b.now()
	elapsed := now.Sub(b.start)
	if elapsed < b.delay || (b.pb != nil && now.Sub(b.lastDraw) < throttle) {
		return
	}
	b.lastDraw = now
	// progressbar ends a bar that reaches its maximum: a dump whose
	// total still grows is not over when it catches up with it. Only
	// Finish ends the bar.
	max := int64(b.total)
	cur := int64(min(b.done, b.total-1))
	text := Text(b.label, b.done, b.total, elapsed)
	if b.pb == nil {
		b.pb = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionSetWidth(width),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetDescription(text))
		b.pbMax = max
		// Set64 draws when the percentage (as progressbar computes it)
		// leaves 0; otherwise draw the blank bar with the text.
		b.pb.Set64(cur)
		if int(float64(cur)/float64(max)*100) == 0 {
			b.pb.RenderBlank()
		}
		return
	}
	if max != b.pbMax {
		b.pb.ChangeMax64(max)
		b.pbMax = max
	}
	// Describe draws, Set64 draws again when the percentage changed: the
	// last line drawn has both right.
	b.pb.Describe(text)
	b.pb.Set64(cur)
}

// Text is what the line says beside the bar: pages done and total, and,
// once pages moved, the rate and the time left at that rate.
func Text(label string, done, total uint64, elapsed time.Duration) string {
	s := fmt.Sprintf("%s: %d/%d pages", label, done, total)
	if done == 0 || elapsed <= 0 {
		return s
	}
	perSec := float64(done) / elapsed.Seconds()
	s += fmt.Sprintf(", %.1f MB/s", perSec*PageSize/1e6)
	if done < total {
		left := time.Duration(float64(total-done) / perSec * float64(time.Second))
		s += ", " + formatLeft(left) + " left"
	}
	return s
}

// formatLeft says a time left the way people read it: 7s, 2m05s, 1h20m.
func formatLeft(d time.Duration) string {
	secs := int64((d + time.Second/2) / time.Second)
	switch {
	case secs < 60:
		return fmt.Sprintf("%ds", secs)
	case secs < 3600:
		return fmt.Sprintf("%dm%02ds", secs/60, secs%60)
	}
	return fmt.Sprintf("%dh%02dm", secs/3600, secs%3600/60)
}
