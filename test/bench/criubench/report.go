package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Key names one cell group of the table.
type Key struct {
	Storage  string
	Workload string
	Tool     string
}

// Results holds every sample, in run order.
type Results map[Key][]Sample

// Stat is the median of the successful runs of one step and how many runs
// failed.
type Stat struct {
	Median time.Duration // zero when no run succeeded
	RSS    int64         // median peak RSS, KiB, of the successful runs
	Fails  int
	Runs   int
	Err    string // the first failure, for the notes under the table
}

// OK tells whether some run of the step succeeded.
func (s Stat) OK() bool { return s.Median > 0 }

// DumpStat and RestoreStat summarise the samples of one cell group.
func DumpStat(ss []Sample) Stat {
	return stepStat(ss, func(s Sample) (bool, string, time.Duration, int64) {
		return s.DumpOK(), s.DumpErr, s.Dump, s.DumpRSS
	})
}

func RestoreStat(ss []Sample) Stat {
	return stepStat(ss, func(s Sample) (bool, string, time.Duration, int64) {
		return s.RestoreOK(), s.RestoreErr, s.Restore, s.RestoreRSS
	})
}

// stepStat summarises one step of the samples, which step says.
func stepStat(ss []Sample, step func(Sample) (ok bool, err string, d time.Duration, rss int64)) Stat {
	var st Stat
	var ds []time.Duration
	var rss []int64
	for _, s := range ss {
		st.Runs++
		ok, err, d, r := step(s)
		if !ok {
			st.Fails++
			if st.Err == "" {
				st.Err = err
			}
			continue
		}
		ds = append(ds, d)
		rss = append(rss, r)
	}
	st.Median, st.RSS = MedianDuration(ds), MedianInt(rss)
	return st
}

// MedianImage is the median image size of the successful dumps, bytes.
func MedianImage(ss []Sample) int64 {
	var b []int64
	for _, s := range ss {
		if s.DumpOK() {
			b = append(b, s.ImageBytes)
		}
	}
	return MedianInt(b)
}

// MedianDuration returns the median, the mean of the middle two for an even
// count, zero for none.
func MedianDuration(ds []time.Duration) time.Duration {
	is := make([]int64, len(ds))
	for i, d := range ds {
		is[i] = int64(d)
	}
	return time.Duration(MedianInt(is))
}

func MedianInt(xs []int64) int64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]int64(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// FormatTime shows a median in seconds, or FAIL when every run failed;
// failed runs beside successful ones are counted after the time.
func FormatTime(s Stat) string {
	if !s.OK() {
		return "FAIL"
	}
	t := fmt.Sprintf("%.3f s", s.Median.Seconds())
	if s.Fails > 0 {
		t += fmt.Sprintf(" (%d/%d FAIL)", s.Fails, s.Runs)
	}
	return t
}

// FormatRatio shows gockpt's median over CRIU's.
func FormatRatio(g, c Stat) string {
	if !g.OK() || !c.OK() {
		return "-"
	}
	return fmt.Sprintf("%.2fx", g.Median.Seconds()/c.Median.Seconds())
}

// FormatRSS shows a peak RSS in MiB.
func FormatRSS(s Stat) string {
	if !s.OK() {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(s.RSS)/1024)
}

func formatMiB(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(b)/(1<<20))
}

// WriteTable writes the markdown table: one row per storage and workload,
// medians of the runs, ratios gockpt/CRIU (below 1 means gockpt is faster),
// then one note per tool and step that failed.
func WriteTable(w io.Writer, res Results, storages []string, wls []Workload, gockpt, criu string) {
	fmt.Fprintln(w, "| storage | workload | dump gockpt | dump CRIU | dump ratio | restore gockpt | restore CRIU | restore ratio | dump RSS MiB gockpt / CRIU | restore RSS MiB gockpt / CRIU | images MiB gockpt / CRIU |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	var notes []string
	for _, st := range storages {
		for _, wl := range wls {
			g := res[Key{st, wl.Name, gockpt}]
			c := res[Key{st, wl.Name, criu}]
			if len(g) == 0 && len(c) == 0 {
				continue
			}
			gd, cd, gr, cr := DumpStat(g), DumpStat(c), RestoreStat(g), RestoreStat(c)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s |\n",
				st, wl.Name, FormatTime(gd), FormatTime(cd), FormatRatio(gd, cd),
				FormatTime(gr), FormatTime(cr), FormatRatio(gr, cr),
				FormatRSS(gd), FormatRSS(cd), FormatRSS(gr), FormatRSS(cr),
				formatMiB(MedianImage(g)), formatMiB(MedianImage(c)))
			for _, n := range []struct {
				tool, step string
				s          Stat
			}{{gockpt, "dump", gd}, {criu, "dump", cd}, {gockpt, "restore", gr}, {criu, "restore", cr}} {
				if n.s.Fails > 0 && !strings.HasPrefix(n.s.Err, "not reached") {
					notes = append(notes, fmt.Sprintf("- %s %s, %s %s: %s", st, wl.Name, n.tool, n.step, oneLine(n.s.Err)))
				}
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Failures (the first of each cell):")
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
