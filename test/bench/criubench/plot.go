package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotted are the families drawn as cost against size, with their x label.
var plotted = []struct {
	family Family
	xLabel string
}{
	{FamilyMemory, "memory (MiB)"},
	{FamilyTree, "tasks"},
	{FamilyThreads, "threads"},
}

// Series is one line of a panel: a tool's median for one step at each size.
type Series struct {
	Label  string
	Points plotter.XYs
}

// PanelSeries returns the four lines of one panel (gockpt and CRIU, dump
// and restore), each with the sizes where some run succeeded.
func PanelSeries(res Results, storage string, fam Family, wls []Workload, tools []string) []Series {
	var out []Series
	for _, step := range []string{"dump", "restore"} {
		for _, tool := range tools {
			s := Series{Label: tool + " " + step}
			for _, wl := range wls {
				if wl.Family != fam {
					continue
				}
				ss := res[Key{storage, wl.Name, tool}]
				st := DumpStat(ss)
				if step == "restore" {
					st = RestoreStat(ss)
				}
				if st.OK() {
					s.Points = append(s.Points, plotter.XY{X: float64(wl.N), Y: st.Median.Seconds()})
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// WritePNG draws one panel per storage (rows) and family (columns), log
// scales on both axes, and writes it to path. It reports false when no
// family has a point to draw.
func WritePNG(path string, res Results, storages []string, wls []Workload, tools []string) (bool, error) {
	var cols []int
	for i, p := range plotted {
		for _, wl := range wls {
			if wl.Family == p.family {
				cols = append(cols, i)
				break
			}
		}
	}
	if len(cols) == 0 {
		return false, nil
	}
	grid := make([][]*plot.Plot, len(storages))
	drawn := false
	for r, st := range storages {
		grid[r] = make([]*plot.Plot, len(cols))
		for c, i := range cols {
			series := PanelSeries(res, st, plotted[i].family, wls, tools)
			p, err := panel(st, plotted[i].family, plotted[i].xLabel, series)
			if err != nil {
				return false, err
			}
			if p != nil {
				grid[r][c] = p
				drawn = true
			}
		}
	}
	if !drawn {
		return false, nil
	}
	w, h := vg.Length(len(cols))*4*vg.Inch, vg.Length(len(storages))*3.5*vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	canvases := plot.Align(grid, draw.Tiles{Rows: len(storages), Cols: len(cols), PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}, dc)
	for r := range grid {
		for c, p := range grid[r] {
			if p != nil {
				p.Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return false, err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, f.Close()
}

var (
	toolColors  = []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}}
	restoreDash = []vg.Length{vg.Points(5), vg.Points(3)}
)

// panel builds one plot, or nil when no series has a point.
func panel(storage string, fam Family, xLabel string, series []Series) (*plot.Plot, error) {
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, pt := range s.Points {
			minX, maxX = math.Min(minX, pt.X), math.Max(maxX, pt.X)
			minY, maxY = math.Min(minY, pt.Y), math.Max(maxY, pt.Y)
		}
	}
	if math.IsInf(minX, 1) {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s, images on %s", fam, storage)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "seconds"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = logTicks{}, logTicks{}
	// Set the ranges: a log scale cannot start at 0, nor span one value.
	// The room above the highest point is for the legend.
	p.X.Min, p.X.Max = minX/1.5, maxX*1.5
	p.Y.Min, p.Y.Max = minY/1.5, maxY*6
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	for i, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		l, pts, err := plotter.NewLinePoints(s.Points)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", fam, s.Label, err)
		}
		col := toolColors[i%2]
		l.Color, pts.Color = col, col
		l.Width = vg.Points(1.5)
		if i >= 2 {
			l.Dashes = restoreDash
			pts.Shape = draw.BoxGlyph{}
		} else {
			pts.Shape = draw.CircleGlyph{}
		}
		p.Add(l, pts)
		p.Legend.Add(s.Label, l, pts)
	}
	return p, nil
}

// logTicks marks 1..9 times each power of ten and labels 1, 2 and 5 times
// it, so that a range narrower than a decade still has labels (plot.LogTicks
// labels only the powers of ten).
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for m := 1.0; m <= 9; m++ {
			v := m * math.Pow(10, e)
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
