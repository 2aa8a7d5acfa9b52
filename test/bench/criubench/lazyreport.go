package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// LazyKey names the runs of one tool on one size in one setting.
type LazyKey struct {
	Workload string
	Setting  string
	Tool     string
}

// LazyResults holds every lazy sample, in run order.
type LazyResults map[LazyKey][]LazySample

// LazyStat is the medians of the successful runs of one cell group.
type LazyStat struct {
	Runs, Fails int
	Err         string // the first failure
	Run         time.Duration
	InPlace     time.Duration
	FaultMedian time.Duration // workload-measured, median over runs of the per-run figure
	FaultP99    time.Duration
	Faults      int64
	PassStart   time.Duration // from the restore's start to the workload's first read
	PassEnd     time.Duration // ... and to the end of its pass
	Median, P99 time.Duration // of all reads
	Daemon      DaemonStat
}

// DaemonStat is the medians of gockpt's own summary lines.
type DaemonStat struct {
	N                    int // runs that printed one
	InPlace, Median, P99 time.Duration
	Faults, Pushed       int64
}

// OK tells whether some run succeeded.
func (s LazyStat) OK() bool { return s.Runs > s.Fails }

// Lazy summarises the samples of one cell group.
func Lazy(ss []LazySample) LazyStat {
	var st LazyStat
	var run, inPlace, fm, fp, passStart, passEnd, med, p99, faults []int64
	var dIn, dMed, dP99, dFaults, dPushed []int64
	for _, s := range ss {
		st.Runs++
		if !s.OK() {
			st.Fails++
			if st.Err == "" {
				st.Err = s.Err
			}
			continue
		}
		run = append(run, int64(s.Run))
		if s.InPlace > 0 {
			inPlace = append(inPlace, int64(s.InPlace))
		}
		fm = append(fm, int64(s.Touch.FaultMedian))
		fp = append(fp, int64(s.Touch.FaultP99))
		faults = append(faults, int64(s.Touch.Faults))
		passStart = append(passStart, int64(s.PassStart))
		passEnd = append(passEnd, int64(s.PassEnd))
		med = append(med, int64(s.Touch.Median))
		p99 = append(p99, int64(s.Touch.P99))
		if d := s.Daemon; d.OK {
			if d.InPlace > 0 {
				dIn = append(dIn, int64(d.InPlace))
			}
			dMed = append(dMed, int64(d.Median))
			dP99 = append(dP99, int64(d.P99))
			dFaults = append(dFaults, int64(d.Faults))
			dPushed = append(dPushed, int64(d.Pushed))
		}
	}
	md := func(xs []int64) time.Duration { return time.Duration(MedianInt(xs)) }
	st.Run, st.InPlace, st.FaultMedian, st.FaultP99 = md(run), md(inPlace), md(fm), md(fp)
	st.Faults, st.Median, st.P99 = MedianInt(faults), md(med), md(p99)
	st.PassStart, st.PassEnd = md(passStart), md(passEnd)
	st.Daemon = DaemonStat{N: len(dMed), InPlace: md(dIn), Median: md(dMed), P99: md(dP99),
		Faults: MedianInt(dFaults), Pushed: MedianInt(dPushed)}
	return st
}

// fmtDur shows a duration with 3 significant digits in a unit that fits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(float64(d)/1e3) + " µs"
	case d < time.Second:
		return sig3(float64(d)/1e6) + " ms"
	}
	return sig3(d.Seconds()) + " s"
}

func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// lazyCell shows one median, or FAIL, with the failed runs counted.
func lazyCell(s LazyStat, d time.Duration) string {
	if s.Runs == 0 {
		return "-"
	}
	if !s.OK() {
		return "FAIL"
	}
	if d <= 0 {
		return "-"
	}
	t := fmtDur(d)
	if s.Fails > 0 {
		t += fmt.Sprintf(" (%d/%d FAIL)", s.Fails, s.Runs)
	}
	return t
}

// durRatio shows a / b, or - when either is missing.
func durRatio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}

// LazySettingLabel says what a setting's rows are for each tool.
func LazySettingLabel(set LazySetting) string {
	switch {
	case set.PageServer:
		return set.Name + " (page server on 127.0.0.1)"
	case set.NoPush:
		return set.Name + " (gockpt --push-pages 0; CRIU as local: it always pushes)"
	}
	return set.Name + " (images)"
}

// WriteLazyTable writes the post-copy tables: the three figures per size
// and setting with the ratios gockpt/CRIU (below 1: gockpt faster), what
// the workload and gockpt's daemon saw, the 1 GiB / 16 MiB ratio of the
// time to run, and a note per cell group that had a failure.
func WriteLazyTable(w io.Writer, res LazyResults, wls []Workload, sets []LazySetting, gockpt, criu string) {
	type row struct {
		wl   Workload
		set  LazySetting
		g, c LazyStat
	}
	var rows []row
	for _, wl := range wls {
		for _, set := range sets {
			g, c := res[LazyKey{wl.Name, set.Name, gockpt}], res[LazyKey{wl.Name, set.Name, criu}]
			if len(g) == 0 && len(c) == 0 {
				continue
			}
			rows = append(rows, row{wl, set, Lazy(g), Lazy(c)})
		}
	}

	fmt.Fprintln(w, "Time to run: the restore command (-d: the tree runs when it returns). All in place: from the start of the restore until the lazy-pages daemon exits. Fault median / p99 (faults): the reads of the workload's pass over its pages that took a page fault (the page was not in place yet: they waited for the daemon), as the workload timed them, and how many there were (no ratio when either tool took fewer than 20). faults-only: gockpt with --push-pages 0, whose daemon never has every page in place while the tree lives (-); CRIU's daemon always pushes: its faults-only runs are local runs again.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| size | setting | time to run gockpt | CRIU | ratio | all in place gockpt | CRIU | ratio | fault median gockpt | CRIU | ratio | fault p99 gockpt | CRIU | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			sizeLabel(r.wl), r.set.Name,
			lazyCell(r.g, r.g.Run), lazyCell(r.c, r.c.Run), durRatio(r.g.Run, r.c.Run),
			lazyCell(r.g, r.g.InPlace), lazyCell(r.c, r.c.InPlace), durRatio(r.g.InPlace, r.c.InPlace),
			faultCell(r.g, r.g.FaultMedian), faultCell(r.c, r.c.FaultMedian), faultRatio(r.g, r.c, r.g.FaultMedian, r.c.FaultMedian),
			lazyCell(r.g, r.g.FaultP99), lazyCell(r.c, r.c.FaultP99), faultRatio(r.g, r.c, r.g.FaultP99, r.c.FaultP99))
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "The workload's pass (one read per page, random order, asked for by SIGUSR2 as the restore returned): when it read its first page and when it had read them all, from the start of the restore; the median and p99 of every read, faulting or not. gockpt's daemon's own summary: all in place after restore connected, its fault service median / p99 (from its reading the fault to its waking the task), faults answered, pages pushed ahead of faults:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| size | setting | first read gockpt / CRIU | all read gockpt / CRIU | ratio | every read median gockpt / CRIU | every read p99 gockpt / CRIU | gockpt daemon: in place, median, p99, faults, pushed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		d := "-"
		if dd := r.g.Daemon; dd.N > 0 {
			d = fmt.Sprintf("%s, %s, %s, %d, %d", lazyCell(r.g, dd.InPlace), fmtDur(dd.Median), fmtDur(dd.P99), dd.Faults, dd.Pushed)
		}
		fmt.Fprintf(w, "| %s | %s | %s / %s | %s / %s | %s | %s / %s | %s / %s | %s |\n",
			sizeLabel(r.wl), r.set.Name,
			lazyCell(r.g, r.g.PassStart), lazyCell(r.c, r.c.PassStart),
			lazyCell(r.g, r.g.PassEnd), lazyCell(r.c, r.c.PassEnd), durRatio(r.g.PassEnd, r.c.PassEnd),
			lazyCell(r.g, r.g.Median), lazyCell(r.c, r.c.Median),
			lazyCell(r.g, r.g.P99), lazyCell(r.c, r.c.P99), d)
	}

	if len(wls) >= 2 {
		small, big := wls[0], wls[len(wls)-1]
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Time to run, %s against %s:\n\n", sizeLabel(big), sizeLabel(small))
		fmt.Fprintf(w, "| setting | gockpt %s | gockpt %s | gockpt ratio | CRIU %s | CRIU %s | CRIU ratio |\n",
			sizeLabel(small), sizeLabel(big), sizeLabel(small), sizeLabel(big))
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, set := range sets {
			gs, gb := Lazy(res[LazyKey{small.Name, set.Name, gockpt}]), Lazy(res[LazyKey{big.Name, set.Name, gockpt}])
			cs, cb := Lazy(res[LazyKey{small.Name, set.Name, criu}]), Lazy(res[LazyKey{big.Name, set.Name, criu}])
			if gs.Runs+gb.Runs+cs.Runs+cb.Runs == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", set.Name,
				lazyCell(gs, gs.Run), lazyCell(gb, gb.Run), durRatio(gb.Run, gs.Run),
				lazyCell(cs, cs.Run), lazyCell(cb, cb.Run), durRatio(cb.Run, cs.Run))
		}
	}

	var notes []string
	for _, r := range rows {
		for _, n := range []struct {
			tool string
			s    LazyStat
		}{{gockpt, r.g}, {criu, r.c}} {
			if n.s.Fails > 0 {
				notes = append(notes, fmt.Sprintf("- %s %s, %s: %d/%d FAIL: %s", r.wl.Name, r.set.Name, n.tool, n.s.Fails, n.s.Runs, oneLine(n.s.Err)))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Failures (the first of each cell):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
}

// minFaults is the fewest faults (median of the runs) a fault latency ratio
// is shown for: a median of a handful of faults says little.
const minFaults = 20

// faultRatio is durRatio, when both tools took at least minFaults faults.
func faultRatio(g, c LazyStat, a, b time.Duration) string {
	if g.Faults < minFaults || c.Faults < minFaults {
		return "-"
	}
	return durRatio(a, b)
}

// faultCell shows a fault latency median with the median count of faults.
func faultCell(s LazyStat, d time.Duration) string {
	if s.Runs == 0 {
		return "-"
	}
	if !s.OK() {
		return "FAIL"
	}
	if s.Faults == 0 {
		return "- (0)"
	}
	c := lazyCell(s, d)
	if i := strings.Index(c, " ("); i >= 0 { // the failed runs go last
		return c[:i] + fmt.Sprintf(" (%d)", s.Faults) + c[i:]
	}
	return c + fmt.Sprintf(" (%d)", s.Faults)
}

// sizeLabel is a touch workload's memory, e.g. "1 GiB".
func sizeLabel(w Workload) string {
	if w.N >= 1024 && w.N%1024 == 0 {
		return fmt.Sprintf("%d GiB", w.N/1024)
	}
	return fmt.Sprintf("%d MiB", w.N)
}
