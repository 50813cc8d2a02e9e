package reports

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Sweeps: a perf spec that measures one thing at several sizes names each
// measurement "<what>, <size> <unit>" ("slot setup, 4096 slots"). The page
// draws such a family as one curve of the medians over the size, so a
// reader sees how a cost grows (memslot_perf_test's slot-count sweep)
// instead of one bar per size.

// sweepName splits "slot setup, 4096 slots" into its family, size and unit.
var sweepName = regexp.MustCompile(`^(.+), (\d+) ([a-zA-Z]+)$`)

// minCurvePoints is the fewest sizes that make a curve worth drawing.
const minCurvePoints = 3

// Curve geometry, in SVG user units.
const (
	curveW     = 420
	curveH     = 160
	curveLeft  = 70 // room for the y labels
	curveBot   = 28 // room for the x labels
	curvePad   = 8
	curveRight = 28 // room for the last x label
)

// htmlCurve is one family's medians over the size, on a log2 size axis
// (sweeps double or grow by powers of 8) and a linear value axis from 0.
type htmlCurve struct {
	Experiment, Family, Units, XUnit string
	Width, Height                    int
	X0, X1, Y0, Y1                   string // the plot area's corners
	Points                           string // the polyline's points
	Dots                             []htmlCurveDot
	XTicks, YTicks                   []htmlTick
	Title                            string
}

type htmlCurveDot struct{ X, Y, Title string }

type htmlTick struct{ Pos, Label string }

type curvePoint struct {
	size   float64
	median float64
}

// curves finds the sweep families among a case's measurements.
func curves(ms []Measurement) []htmlCurve {
	type key struct{ exp, family, unit, xunit string }
	fams := map[key][]curvePoint{}
	var order []key
	for _, m := range ms {
		sm := sweepName.FindStringSubmatch(m.Name)
		if sm == nil || !finite(m.Median) {
			continue
		}
		size, err := strconv.ParseFloat(sm[2], 64)
		if err != nil || size <= 0 {
			continue
		}
		k := key{m.Experiment, sm[1], m.Units, sm[3]}
		if _, seen := fams[k]; !seen {
			order = append(order, k)
		}
		fams[k] = append(fams[k], curvePoint{size, m.Median})
	}
	var out []htmlCurve
	for _, k := range order {
		pts := fams[k]
		sort.Slice(pts, func(i, j int) bool { return pts[i].size < pts[j].size })
		// One point per size: the first measurement of a size wins.
		uniq := pts[:0:0]
		for _, p := range pts {
			if len(uniq) == 0 || uniq[len(uniq)-1].size != p.size {
				uniq = append(uniq, p)
			}
		}
		if len(uniq) < minCurvePoints {
			continue
		}
		out = append(out, curve(k.exp, k.family, k.unit, k.xunit, uniq))
	}
	return out
}

func curve(exp, family, units, xunit string, pts []curvePoint) htmlCurve {
	lx0, lx1 := math.Log2(pts[0].size), math.Log2(pts[len(pts)-1].size)
	if lx1 <= lx0 {
		lx1 = lx0 + 1
	}
	hi := 0.0
	for _, p := range pts {
		hi = math.Max(hi, p.median)
	}
	if hi <= 0 {
		hi = 1
	}
	x0, x1 := float64(curveLeft), float64(curveW-curveRight)
	y0, y1 := float64(curveH-curveBot), float64(curvePad) // y grows downwards
	x := func(size float64) float64 { return x0 + (math.Log2(size)-lx0)/(lx1-lx0)*(x1-x0) }
	y := func(v float64) float64 { return y0 - v/hi*(y0-y1) }
	f := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	c := htmlCurve{
		Experiment: exp, Family: family, Units: units, XUnit: xunit,
		Width: curveW, Height: curveH,
		X0: f(x0), X1: f(x1), Y0: f(y0), Y1: f(y1),
		Title: fmt.Sprintf("%s: median per %s, %d points", family, strings.TrimSuffix(xunit, "s"), len(pts)),
	}
	var poly []string
	for _, p := range pts {
		px, py := f(x(p.size)), f(y(p.median))
		poly = append(poly, px+","+py)
		label := fmt.Sprintf("%g %s: %s", p.size, xunit, formatValue(p.median, units))
		c.Dots = append(c.Dots, htmlCurveDot{X: px, Y: py, Title: label})
		c.XTicks = append(c.XTicks, htmlTick{Pos: px, Label: fmt.Sprintf("%g", p.size)})
	}
	c.Points = strings.Join(poly, " ")
	for _, v := range []float64{0, hi / 2, hi} {
		c.YTicks = append(c.YTicks, htmlTick{Pos: f(y(v)), Label: formatValue(v, units)})
	}
	return c
}
