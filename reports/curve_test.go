package reports

import (
	"bytes"
	"strings"
	"testing"
)

// A sweep of measurements named "<what>, <n> <unit>" becomes one curve of
// medians over n; lone sizes and other names do not.
func TestCurves(t *testing.T) {
	ms := []Measurement{
		{Experiment: "map", Name: "slot setup, 1 slots", Units: "ns", Median: 100},
		{Experiment: "map", Name: "slot setup, 4096 slots", Units: "ns", Median: 900},
		{Experiment: "map", Name: "slot setup, 64 slots", Units: "ns", Median: 300},
		{Experiment: "map", Name: "slot setup, 64 slots", Units: "ns", Median: 9999}, // a second sample set of one size
		{Experiment: "map", Name: "iteration, 1 slots", Units: "ns", Median: 5},
		{Experiment: "map", Name: "iteration, 8 slots", Units: "ns", Median: 6}, // two sizes only: no curve
		{Experiment: "map", Name: "optimal slot count", Units: "slots", Median: 32763},
	}
	cs := curves(ms)
	if len(cs) != 1 {
		t.Fatalf("%d curves, want 1: %+v", len(cs), cs)
	}
	c := cs[0]
	if c.Family != "slot setup" || c.XUnit != "slots" || len(c.Dots) != 3 {
		t.Fatalf("curve %+v", c)
	}
	// Sizes in order, x growing with log2(size): 1, 64, 4096 equally spaced.
	if c.XTicks[0].Label != "1" || c.XTicks[1].Label != "64" || c.XTicks[2].Label != "4096" {
		t.Fatalf("x ticks %+v", c.XTicks)
	}
	if !strings.Contains(c.Dots[1].Title, "64 slots") || strings.Contains(c.Dots[1].Title, "9.999") {
		t.Fatalf("the first measurement of a size is not the one drawn: %q", c.Dots[1].Title)
	}
	// The highest median sits at the top of the plot, a median of 0 would
	// sit on the axis.
	if c.Dots[2].Y != c.Y1 {
		t.Fatalf("highest point at y=%s, top is %s", c.Dots[2].Y, c.Y1)
	}
	run := htmlRun()
	run.Cases[0].Perf = append(run.Cases[0].Perf, ms...)
	var b bytes.Buffer
	if err := run.WriteHTML(&b, nil); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	checkWellFormed(t, page)
	if !strings.Contains(page, `class="curveline"`) || !strings.Contains(page, "slot setup (median, ns) over slots") {
		t.Fatal("the page has no curve for the sweep")
	}
}
