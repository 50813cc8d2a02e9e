package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// HistoryReport is what several runs, oldest first, say over time: the
// median of every measurement in each run, and since when each case that
// fails in the newest run has failed.
type HistoryReport struct {
	Runs    []Meta
	Trends  []Trend
	Failing []FailingCase
	// Last compares the two newest runs, as `report --baseline` would.
	Last *Comparison
}

// Trend is one measurement's median per run; NaN where a run lacks it.
type Trend struct {
	Backend, CaseID, Experiment, Name, Units string
	Medians                                  []float64
	N                                        []int
}

// FailingCase is a case failing in the newest run, with the first run of
// its current streak of failures.
type FailingCase struct {
	Backend, ID string
	State       State
	Message     string
	// Since is the index (into Runs) of the first run of the streak;
	// SinceStart is true when it fails in every run given, so the streak
	// may be older.
	Since      int
	SinceStart bool
}

// History builds the trends of runs, oldest first.
func History(runs []Run, opt CompareOptions) HistoryReport {
	var h HistoryReport
	for _, r := range runs {
		h.Runs = append(h.Runs, r.Meta)
	}
	if len(runs) == 0 {
		return h
	}
	type key = perfKey
	index := map[key]int{}
	for i, r := range runs {
		for _, c := range r.Cases {
			nth := map[[2]string]int{}
			for _, m := range c.Perf {
				k := key{c.Backend, c.ID, m.Experiment, m.Name, nth[[2]string{m.Experiment, m.Name}]}
				nth[[2]string{m.Experiment, m.Name}]++
				j, ok := index[k]
				if !ok {
					j = len(h.Trends)
					index[k] = j
					t := Trend{Backend: c.Backend, CaseID: c.ID, Experiment: m.Experiment, Name: m.Name, Units: m.Units,
						Medians: make([]float64, len(runs)), N: make([]int, len(runs))}
					for x := range t.Medians {
						t.Medians[x] = math.NaN()
					}
					h.Trends = append(h.Trends, t)
				}
				h.Trends[j].Medians[i], h.Trends[j].N[i] = m.Median, m.N
			}
		}
	}
	newest := runs[len(runs)-1]
	states := make([]map[caseKey]State, len(runs))
	for i, r := range runs {
		states[i] = map[caseKey]State{}
		for _, c := range r.Cases {
			states[i][caseKey{c.Backend, c.ID}] = c.State
		}
	}
	for _, c := range newest.Cases {
		if !c.State.Failed() {
			continue
		}
		k := caseKey{c.Backend, c.ID}
		since := len(runs) - 1
		for since > 0 && states[since-1][k].Failed() {
			since--
		}
		h.Failing = append(h.Failing, FailingCase{Backend: c.Backend, ID: c.ID, State: c.State, Message: c.Message,
			Since: since, SinceStart: since == 0 && len(runs) > 1})
	}
	if len(runs) >= 2 {
		c := Compare(runs[len(runs)-2], newest, opt)
		h.Last = &c
	}
	return h
}

// runName names run i in a history: its index, start time and seed.
func (h HistoryReport) runName(i int) string {
	m := h.Runs[i]
	s := fmt.Sprintf("#%d", i+1)
	if !m.Started.IsZero() {
		s += " " + m.Started.UTC().Format("2006-01-02T15:04Z")
	}
	return s
}

func (f FailingCase) since(h HistoryReport) string {
	if f.SinceStart {
		return "since at least " + h.runName(f.Since)
	}
	if f.Since == len(h.Runs)-1 {
		return "new in " + h.runName(f.Since)
	}
	return fmt.Sprintf("since %s (%d runs)", h.runName(f.Since), len(h.Runs)-f.Since)
}

// Text writes the history for a terminal: failing cases with since when,
// and each measurement's medians, oldest first.
func (h HistoryReport) Text(w io.Writer) {
	fmt.Fprintf(w, "history of %d runs, oldest first:\n", len(h.Runs))
	for i := range h.Runs {
		fmt.Fprintf(w, "  %s  %s seed %d\n", h.runName(i), orDash(h.Runs[i].Version), h.Runs[i].Seed)
	}
	if len(h.Failing) > 0 {
		fmt.Fprintf(w, "\nfailing now (%d):\n", len(h.Failing))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range h.Failing {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", caseName(Case{Backend: f.Backend, ID: f.ID}), f.since(h), oneLine(f.Message))
		}
		tw.Flush()
	}
	if len(h.Trends) > 0 {
		fmt.Fprintln(w, "\nmedians per run:")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range h.Trends {
			vals := make([]string, len(t.Medians))
			for i, v := range t.Medians {
				vals[i] = "-"
				if finite(v) {
					vals[i] = formatValue(v, t.Units)
				}
			}
			fmt.Fprintf(tw, "  %s/%s\t%s\t%s\n", t.Backend, t.CaseID, t.Name, strings.Join(vals, " → "))
		}
		tw.Flush()
	}
	if h.Last != nil {
		fmt.Fprintln(w, "\nthe newest run against the one before:")
		h.Last.Text(w)
	}
}

// Sparkline geometry.
const (
	sparkW   = 240
	sparkH   = 44
	sparkPad = 4
)

type htmlTrend struct {
	Case, Name, Units string
	Points            string // polyline points
	Dots              []htmlDot
	Lo, Hi, First     string // axis labels
	Last              string
	Width, Height     int
}

type htmlDot struct{ X, Y, Title string }

type htmlFailing struct{ Name, Since, Message, Cls string }

type htmlHistory struct {
	Title   string
	Runs    []htmlKV
	Failing []htmlFailing
	Trends  []htmlTrend
	Last    *htmlComparison
}

// WriteHistoryHTML writes a self-contained page of the history of runs,
// oldest first: what fails now and since when, and a trend line per
// measurement.
func WriteHistoryHTML(w io.Writer, runs []Run, opt CompareOptions) error {
	h := History(runs, opt)
	page := htmlHistory{Title: fmt.Sprintf("kvmspec history of %d runs", len(runs))}
	for i, m := range h.Runs {
		page.Runs = append(page.Runs, htmlKV{h.runName(i), fmt.Sprintf("%s, seed %d, backends %s", orDash(m.Version), m.Seed, orDash(strings.Join(m.Backends, ", ")))})
	}
	for _, f := range h.Failing {
		cls := "fail"
		if f.Since == len(h.Runs)-1 {
			cls = "fail new"
		}
		page.Failing = append(page.Failing, htmlFailing{Name: caseName(Case{Backend: f.Backend, ID: f.ID}), Since: f.since(h), Message: oneLine(f.Message), Cls: cls})
	}
	for _, t := range h.Trends {
		page.Trends = append(page.Trends, sparkline(h, t))
	}
	if h.Last != nil {
		page.Last = newHTMLComparison(*h.Last)
	}
	var buf bytes.Buffer
	if err := historyTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("history html: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func sparkline(h HistoryReport, t Trend) htmlTrend {
	out := htmlTrend{Case: t.Backend + "/" + t.CaseID, Name: t.Name, Units: t.Units, Width: sparkW, Height: sparkH}
	lo, hi := 0.0, 0.0
	for _, v := range t.Medians {
		if finite(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi <= lo {
		hi = lo + 1
	}
	n := len(t.Medians)
	x := func(i int) float64 {
		if n == 1 {
			return sparkW / 2
		}
		return sparkPad + float64(i)/float64(n-1)*(sparkW-2*sparkPad)
	}
	plotH := float64(sparkH - 14) // room for the run labels below
	y := func(v float64) float64 { return sparkPad + (1-(v-lo)/(hi-lo))*(plotH-sparkPad) }
	var pts []string
	for i, v := range t.Medians {
		if !finite(v) {
			continue
		}
		px, py := fmt.Sprintf("%.1f", x(i)), fmt.Sprintf("%.1f", y(v))
		pts = append(pts, px+","+py)
		out.Dots = append(out.Dots, htmlDot{X: px, Y: py, Title: fmt.Sprintf("%s: median %s, n=%d", h.runName(i), formatValue(v, t.Units), t.N[i])})
	}
	out.Points = strings.Join(pts, " ")
	out.Lo, out.Hi = formatValue(lo, t.Units), formatValue(hi, t.Units)
	out.First, out.Last = h.runName(0), h.runName(n-1)
	return out
}

var historyTemplate = template.Must(template.New("history").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fff; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.fail { background: #fbdcdc; }
.new { font-weight: bold; }
.muted { color: #666; }
svg polyline { fill: none; stroke: #335; stroke-width: 1.5; }
svg circle { fill: #335; }
svg .axis { stroke: #bbb; }
svg text { font-size: 9px; fill: #555; }
svg text.end { text-anchor: end; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<div id="verdict">
<h2>failing now ({{len .Failing}})</h2>
{{if .Failing}}<table>
<tr><th>case</th><th>failing</th><th>message</th></tr>
{{range .Failing}}<tr class="{{.Cls}}"><td>{{.Name}}</td><td>{{.Since}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{else}}<p>none</p>{{end}}
{{with .Last}}<p>newest run against the one before: <b>{{if .Regressions}}{{.Regressions}} regressions{{else}}no regressions{{end}}</b></p>{{end}}
</div>
<h2>runs, oldest first</h2>
<table>
{{range .Runs}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
<h2 id="trends">measurements ({{len .Trends}})</h2>
<p class="muted">The median of each run, oldest left; the axis runs from 0 (or the lowest median) to the highest, in the measurement's units.</p>
<table>
<tr><th>case</th><th>measurement</th><th>trend</th></tr>
{{range .Trends}}<tr><td>{{.Case}}</td><td>{{.Name}}{{if .Units}} <span class="muted">({{.Units}})</span>{{end}}</td><td><svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img">
<line class="axis" x1="4" y1="30" x2="236" y2="30"/>
<text x="0" y="9">{{.Hi}}</text><text x="0" y="28">{{.Lo}}</text>
<polyline points="{{.Points}}"/>
{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="2"><title>{{.Title}}</title></circle>
{{end}}<text x="4" y="41">{{.First}}</text><text class="end" x="236" y="41">{{.Last}}</text>
</svg></td></tr>
{{end}}</table>
</body>
</html>
`))
