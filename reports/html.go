package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/harness/host"
)

// WriteHTML writes the run as one self-contained HTML page: run settings,
// host facts and backend capabilities, counts per backend and area, the
// failed cases with their failure texts, skips grouped by reason, every
// case, and a chart per perf measurement. With a baseline (base non-nil)
// the page opens with Compare(*base, r, CompareOptions{}) and marks each
// measurement with the baseline median, the ratio and the verdict.
//
// The page loads nothing (styles and SVG charts are inline, there is no
// script), so it can be archived as a CI artifact and opened offline, and
// everything taken from the run (spec names, guest messages) is escaped
// by html/template: those are untrusted text. The output depends only on
// the inputs, so two renderings of one report are byte-identical.
func (r Run) WriteHTML(w io.Writer, base *Run) error {
	return r.WriteHTMLOptions(w, base, CompareOptions{})
}

// WriteHTMLOptions is WriteHTML with the options for the comparison with
// base, so that the page and the CLI's text agree on verdicts.
func (r Run) WriteHTMLOptions(w io.Writer, base *Run, opt CompareOptions) error {
	var cmp *Comparison
	if base != nil {
		c := Compare(*base, r, opt)
		cmp = &c
	}
	page := newHTMLPage(r, cmp)
	// Render into memory first: a template error half-way must not leave
	// half a page that looks complete.
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("report html: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report html: %w", err)
	}
	return nil
}

// The view model: everything the template shows, precomputed as text, so
// that the template only lays out and escapes.

type htmlPage struct {
	Title       string
	Changed     []htmlLink // what changed against the baseline, most serious first
	FailedLinks []htmlLink // every failure, linked to its text below
	Settings    []htmlKV
	Host        []host.Property
	CapBackends []string
	Caps        []htmlCapRow
	Cmp         *htmlComparison
	Groups      []htmlCountRow
	Total       htmlCountRow
	Verdict     string
	VerdictLine string
	VerdictCls  string
	Problems    []string
	Failed      []htmlFailed
	Skips       []htmlSkipGroup
	SkipTotal   int
	Cases       []htmlCaseRow
	Perf        []htmlPerfCase
	PerfBase    bool
	Archs       []htmlArchRow  // counts per architecture of a platforms merge
	Platforms   []htmlPlatform // its platforms' own facts
}

// htmlArchRow is one architecture's counts; Platforms names its platforms
// and says why any of them has no run.
type htmlArchRow struct {
	htmlCountRow
	Platforms string
}

// htmlPlatform is one platform of a platforms merge as the page shows it.
type htmlPlatform struct {
	Name, Arch, Backends, Kernel, CPU, KVM, Profile, Deviations, Filter, Source, Status, StatusCls string
	Counts                                                                                         string
	Host                                                                                           []host.Property
}

type htmlKV struct{ Key, Value string }

// htmlLink is one line of the page's lead: text, and an anchor on the page
// ("" for none).
type htmlLink struct{ Text, Href, Cls string }

type htmlCapRow struct {
	Name  string
	Cells []htmlCapCell
}

type htmlCapCell struct {
	Mark, Detail, Cls string
}

type htmlCountRow struct {
	Name                                 string
	Passed, Failed, Skipped, Dev, Total  int
	Time                                 string
	FailCls                              string
	PassedCls, SkippedCls, DeviationsCls string
}

type htmlFailed struct {
	ID, Name, State, Cls, Location, FailureLocation, Message, Failure, Output, Duration string
	Entries                                                                             []Entry
}

type htmlSkipGroup struct {
	Reason string
	Cls    string
	Cases  []string
}

type htmlCaseRow struct {
	Backend, Area, Name, State, Cls, Duration, Message, Href string
}

type htmlPerfCase struct {
	Name   string
	Rows   []htmlPerfRow
	Curves []htmlCurve // sweep families (see curve.go)
}

type htmlPerfRow struct {
	Experiment, Name, Units, N, Min, Median, Max string
	Chart                                        *htmlChart
	BaseMedian, Ratio, Verdict, Cls, Note        string
}

// htmlChart is the geometry of one measurement's bar, in SVG user units.
type htmlChart struct {
	Width, Height                     int
	Track1, Track2                    string   // x of the axis ends
	RangeX, RangeW                    string   // current min–max, "" without a range
	Median                            string   // current median
	BaseX, BaseW                      string   // baseline min–max, "" without one
	BaseMedian                        string   // baseline median, "" without a baseline
	Lo, Hi                            string   // axis ends as values, with units: the axis labels
	Samples                           []string // x of every sample (at most maxChartSamples)
	SamplesShown                      string   // "20 samples", or "200 of 5000 samples"
	Title                             string
	Cls                               string
	HasRange, HasBaseRange, HasBaseMd bool
}

type htmlComparison struct {
	Base        []htmlKV
	Regressions int
	Counts      []htmlKV
	Cases       []htmlChange
	Perf        []htmlPerfChange // judged worse, better or changed
	NoisyPerf   []htmlPerfChange // past the threshold, held back as noise
	Threshold   string
	Guard       string
}

type htmlChange struct {
	Kind, Cls, Name, Before, After, Message, Href string
}

type htmlPerfChange struct {
	Verdict, Cls, Case, Name, Base, Cur, Ratio, Note string
}

func newHTMLPage(r Run, cmp *Comparison) htmlPage {
	m := r.Meta
	p := htmlPage{Title: "kvmspec " + orDash(m.Version) + " report", Host: m.Host, Problems: r.Problems}
	add := func(k, v string) {
		if v != "" {
			p.Settings = append(p.Settings, htmlKV{k, v})
		}
	}
	add("version", orDash(m.Version))
	add("seed", fmt.Sprint(m.Seed))
	add("backends", orDash(strings.Join(m.Backends, ", ")))
	add("profile", m.Profile)
	if m.Strict {
		add("strict", "host profiles ignored")
	}
	add("label filter", m.LabelFilter)
	add("focus", m.Focus)
	add("started", htmlTime(m.Started))
	add("finished", htmlTime(m.Finished))
	if d := m.Finished.Sub(m.Started); d > 0 {
		add("duration", d.Round(time.Millisecond).String())
	}
	if r.Filtered > 0 {
		add("filtered out", fmt.Sprint(r.Filtered))
	}
	add("reports", m.ReportDir)
	p.Archs, p.Platforms = platformRows(r)
	if len(p.Platforms) > 0 {
		var names []string
		for _, x := range p.Platforms {
			names = append(names, x.Name)
		}
		add("platforms", strings.Join(names, ", "))
	}

	p.CapBackends, p.Caps = capTable(m)
	if cmp != nil {
		p.Cmp = newHTMLComparison(*cmp)
	}

	keys, byKey := groups(r.Cases)
	var all []Case
	for _, k := range keys {
		row := countRow(k.name(), byKey[k])
		p.Groups = append(p.Groups, row)
		all = append(all, byKey[k]...)
	}
	p.Total = countRow("total", all)
	lines := strings.SplitN(r.verdict(), "\n", 2)
	p.VerdictLine = lines[0]
	if len(lines) == 2 {
		p.Verdict = lines[1]
	}
	p.VerdictCls = "pass"
	if !strings.HasPrefix(p.Verdict, "PASS") {
		p.VerdictCls = "fail"
	}

	anchors := failureAnchors(r.Cases)
	for _, c := range r.Cases {
		href := ""
		if id, ok := anchors[caseKey{c.Backend, c.ID}]; ok {
			href = "#" + id
		}
		if c.State.Failed() && href != "" {
			if len(p.FailedLinks) < leadFailures {
				p.FailedLinks = append(p.FailedLinks, htmlLink{Text: caseName(c) + ": " + oneLine(c.Message), Href: href, Cls: "fail"})
			} else if len(p.FailedLinks) == leadFailures {
				p.FailedLinks = append(p.FailedLinks, htmlLink{Text: "… and more: see the failed section", Href: "#failed"})
			}
			p.Failed = append(p.Failed, htmlFailed{
				ID:   anchors[caseKey{c.Backend, c.ID}],
				Name: caseName(c), State: string(c.State), Cls: stateClass(c.State),
				Location: c.Location, FailureLocation: c.FailureLocation,
				Message: c.Message, Failure: c.Failure, Output: c.Output,
				Duration: c.Duration.Round(time.Millisecond).String(), Entries: c.Entries,
			})
		}
		p.Cases = append(p.Cases, htmlCaseRow{
			Backend: c.Backend, Area: c.Area, Name: c.Name, State: string(c.State), Cls: stateClass(c.State),
			Duration: c.Duration.Round(time.Millisecond).String(), Message: oneLine(c.Message), Href: href,
		})
	}
	if cmp != nil {
		p.Changed = changedLinks(*cmp, anchors)
		if n := len(p.Changed); n > leadChanges {
			p.Changed = append(p.Changed[:leadChanges], htmlLink{Text: fmt.Sprintf("… and %d more: see the comparison", n-leadChanges), Href: "#comparison"})
		}
		for i := range p.Cmp.Cases {
			if id, ok := anchors[caseKey{cmp.Cases[i].Backend, cmp.Cases[i].ID}]; ok {
				p.Cmp.Cases[i].Href = "#" + id
			}
		}
	}
	p.Skips, p.SkipTotal = skipGroups(r.Cases)
	p.Perf, p.PerfBase = perfSection(r, cmp)
	return p
}

// platformRows are the page's architecture counts and platform facts of a
// platforms merge; none for another run.
func platformRows(r Run) ([]htmlArchRow, []htmlPlatform) {
	var archs []htmlArchRow
	for _, a := range r.ArchCounts() {
		c := a.Counts
		row := htmlArchRow{htmlCountRow: countRow(a.Arch, nil), Platforms: a.note()}
		row.Passed, row.Failed, row.Skipped, row.Dev, row.Total = c.Passed, c.Failed, c.Skipped, c.Deviations, c.Total
		row.FailCls, row.PassedCls, row.SkippedCls, row.DeviationsCls = nonZero(c.Failed, "fail"), nonZero(c.Passed, "pass"), nonZero(c.Skipped, "skip"), nonZero(c.Deviations, "dev")
		archs = append(archs, row)
	}
	var plats []htmlPlatform
	for _, p := range r.Meta.Platforms {
		h := htmlPlatform{Name: p.Name, Arch: p.Arch, Backends: strings.Join(p.Backends, ", "), Source: p.Source,
			Status: p.Status(), StatusCls: "pass", Counts: p.Counts.String()}
		switch {
		case p.Skipped != "":
			h.StatusCls = "skip"
		case p.Failed != "" || p.Incomplete != "" || p.Counts.Failed > 0:
			h.StatusCls = "fail"
		}
		if m := p.Meta; m != nil {
			h.Kernel = hostFact(m.Host, "host.kernel")
			h.CPU = hostFact(m.Host, "host.cpu")
			if h.CPU == "" {
				h.CPU = hostFact(m.Host, "host.cpu_vendor")
			}
			h.KVM = hostFact(m.Host, "host.dev_kvm")
			h.Profile = m.Profile
			if m.Profile != "" {
				h.Deviations = fmt.Sprint(m.Deviations)
			}
			if m.Strict {
				h.Profile = "strict: profiles ignored"
			}
			h.Filter = m.LabelFilter
			h.Host = m.Host
		}
		plats = append(plats, h)
	}
	return archs, plats
}

func nonZero(n int, cls string) string {
	if n == 0 {
		return ""
	}
	return cls
}

// leadFailures bounds the failures listed in the page's lead, so that a
// run where everything fails still shows its verdict on the first screen.
const (
	leadFailures = 20
	leadChanges  = 30
)

// failureAnchors gives every failing case an anchor, in run order; the
// first case of a duplicated key keeps it.
func failureAnchors(cases []Case) map[caseKey]string {
	out := map[caseKey]string{}
	for _, c := range cases {
		k := caseKey{c.Backend, c.ID}
		if _, dup := out[k]; c.State.Failed() && !dup {
			out[k] = fmt.Sprintf("failure-%d", len(out)+1)
		}
	}
	return out
}

// changedLinks is the lead's list of what changed against the baseline:
// case regressions and new failures (linked to their failure text),
// measurements gone worse, deviation and coverage changes, fixes.
func changedLinks(c Comparison, anchors map[caseKey]string) []htmlLink {
	var out []htmlLink
	for _, x := range c.Cases {
		l := htmlLink{Text: fmt.Sprintf("%s: %s (%s → %s)", x.Kind, caseName(Case{Backend: x.Backend, ID: x.ID}), orDash(string(x.Before)), orDash(string(x.After)))}
		switch {
		case x.Regression():
			l.Text, l.Cls = "REGRESSION "+l.Text, "fail"
		case x.Kind == ChangeFixed || x.Kind == ChangeGainedCoverage:
			l.Cls = "pass"
		case x.Kind == ChangeDeviation || x.Kind == ChangeLostCoverage:
			l.Cls = "skip"
		}
		if id, ok := anchors[caseKey{x.Backend, x.ID}]; ok {
			l.Href = "#" + id
		}
		out = append(out, l)
	}
	for _, p := range c.Perf {
		if p.Verdict == VerdictWorse || p.Verdict == VerdictBetter {
			cls := "pass"
			if p.Verdict == VerdictWorse {
				cls = "fail"
			}
			out = append(out, htmlLink{Text: fmt.Sprintf("%s: %s/%s %s %s → %s (%s)", p.verdictWord(), p.Backend, p.CaseID, p.Name,
				formatValue(p.Base.Median, p.Units), formatValue(p.Cur.Median, p.Units), formatRatio(p.Ratio)), Href: "#perf", Cls: cls})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return linkRank(out[i]) < linkRank(out[j]) })
	return out
}

func linkRank(l htmlLink) int {
	switch l.Cls {
	case "fail":
		return 0
	case "skip":
		return 1
	}
	return 2
}

func htmlTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// stateClass maps a state onto the CSS classes of the page; an unknown
// state (a hand-made Run) gets the failure colour, as Validate refuses it.
func stateClass(s State) string {
	switch {
	case s == StatePassed:
		return "pass"
	case s == StateDeviation:
		return "dev"
	case s == StateSkipped:
		return "skip"
	}
	return "fail"
}

func countRow(name string, cases []Case) htmlCountRow {
	c := tally(cases)
	var d time.Duration
	for _, x := range cases {
		d += x.Duration
	}
	row := htmlCountRow{Name: name, Passed: c.Passed, Failed: c.Failed, Skipped: c.Skipped, Dev: c.Deviations, Total: c.Total,
		Time: d.Round(time.Millisecond).String()}
	// Colour only non-zero cells, so that the eye finds the failures.
	if c.Failed > 0 {
		row.FailCls = "fail"
	}
	if c.Passed > 0 {
		row.PassedCls = "pass"
	}
	if c.Skipped > 0 {
		row.SkippedCls = "skip"
	}
	if c.Deviations > 0 {
		row.DeviationsCls = "dev"
	}
	return row
}

// capTable lays the capability lines out as one row per capability and
// one column per backend: the run's backends in order, then any other
// backend with capabilities, sorted, so the page never depends on map
// order.
func capTable(m Meta) ([]string, []htmlCapRow) {
	var backends []string
	seen := map[string]bool{}
	for _, b := range m.Backends {
		if _, ok := m.Caps[b]; ok && !seen[b] {
			backends = append(backends, b)
			seen[b] = true
		}
	}
	var rest []string
	for b := range m.Caps {
		if !seen[b] {
			rest = append(rest, b)
		}
	}
	sort.Strings(rest)
	backends = append(backends, rest...)

	var names []string
	cells := map[string]map[string]CapLine{}
	for _, b := range backends {
		for _, l := range m.Caps[b] {
			if cells[l.Name] == nil {
				cells[l.Name] = map[string]CapLine{}
				names = append(names, l.Name)
			}
			if _, dup := cells[l.Name][b]; !dup {
				cells[l.Name][b] = l
			}
		}
	}
	var rows []htmlCapRow
	for _, n := range names {
		row := htmlCapRow{Name: n}
		for _, b := range backends {
			l, ok := cells[n][b]
			switch {
			case !ok:
				row.Cells = append(row.Cells, htmlCapCell{Mark: "–"})
			case l.Supported:
				row.Cells = append(row.Cells, htmlCapCell{Mark: "yes", Detail: l.Detail, Cls: "pass"})
			default:
				row.Cells = append(row.Cells, htmlCapCell{Mark: "no", Detail: l.Detail, Cls: "skip"})
			}
		}
		rows = append(rows, row)
	}
	return backends, rows
}

// skipGroups groups skipped cases and deviations by reason, the most
// frequent reason first, as Summary counts them.
func skipGroups(cases []Case) ([]htmlSkipGroup, int) {
	byReason := map[string]*htmlSkipGroup{}
	total := 0
	for _, c := range cases {
		if c.State != StateSkipped && c.State != StateDeviation {
			continue
		}
		total++
		reason := oneLine(c.Message)
		if reason == "" {
			reason = "(no reason given)"
		}
		if c.Backend != "" && !strings.HasPrefix(reason, c.Backend+":") {
			reason = c.Backend + ": " + reason
		}
		g := byReason[reason]
		if g == nil {
			g = &htmlSkipGroup{Reason: reason, Cls: stateClass(c.State)}
			byReason[reason] = g
		}
		g.Cases = append(g.Cases, caseName(c))
	}
	out := make([]htmlSkipGroup, 0, len(byReason))
	for _, g := range byReason {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i].Cases) != len(out[j].Cases) {
			return len(out[i].Cases) > len(out[j].Cases)
		}
		return out[i].Reason < out[j].Reason
	})
	return out, total
}

func verdictClass(p PerfChange) string {
	switch {
	case p.Verdict == VerdictWorse:
		return "fail"
	case p.Verdict == VerdictBetter:
		return "pass"
	case p.Noisy || p.Significant:
		return "noise"
	}
	return "same"
}

func verdictText(p PerfChange) string {
	switch {
	case !p.HasBase:
		return "new"
	case !p.HasCur:
		return "removed"
	case p.Verdict == VerdictNone && p.Significant:
		return "changed"
	case p.Verdict == VerdictNone:
		return "unrated"
	case p.Noisy:
		return string(p.Verdict) + " (noise?)"
	}
	return string(p.Verdict)
}

func perfSection(r Run, cmp *Comparison) ([]htmlPerfCase, bool) {
	changes := map[perfKey]PerfChange{}
	if cmp != nil {
		for _, p := range cmp.Perf {
			changes[perfKey{p.Backend, p.CaseID, p.Experiment, p.Name, p.nth}] = p
		}
	}
	var out []htmlPerfCase
	for _, c := range r.Cases {
		if len(c.Perf) == 0 {
			continue
		}
		pc := htmlPerfCase{Name: caseName(c)}
		nth := map[[2]string]int{}
		for _, m := range c.Perf {
			k := perfKey{c.Backend, c.ID, m.Experiment, m.Name, nth[[2]string{m.Experiment, m.Name}]}
			nth[[2]string{m.Experiment, m.Name}]++
			row := htmlPerfRow{
				Experiment: m.Experiment, Name: m.Name, Units: m.Units, N: fmt.Sprint(m.N),
				Min: formatValue(m.Min, m.Units), Median: formatValue(m.Median, m.Units), Max: formatValue(m.Max, m.Units),
				Cls: "same",
			}
			var pch *PerfChange
			if ch, ok := changes[k]; ok {
				pch = &ch
				row.Verdict, row.Cls = verdictText(ch), verdictClass(ch)
				if ch.HasBase {
					row.BaseMedian = formatValue(ch.Base.Median, ch.Units)
					row.Ratio = formatRatio(ch.Ratio)
					row.Note = ch.note(cmp.Options)
				}
			}
			row.Chart = chart(m, pch, row.Cls)
			pc.Rows = append(pc.Rows, row)
		}
		pc.Curves = curves(c.Perf)
		out = append(out, pc)
	}
	return out, cmp != nil
}

// Chart geometry: a fixed-size bar per measurement. Each bar has its own
// scale from zero (or the lowest value, if negative) to the highest value
// shown, since measurements differ by orders of magnitude; the bar shows
// spread and shift, not magnitude across rows.
const (
	chartW   = 300
	chartH   = 40
	chartPad = 6
	// maxChartSamples bounds the dots per chart, so a measurement of
	// thousands of samples does not make the page heavy.
	maxChartSamples = 200
)

func chart(m Measurement, ch *PerfChange, cls string) *htmlChart {
	vals := []float64{m.Median}
	hasRange := usableRange(m)
	if hasRange {
		vals = append(vals, m.Min, m.Max)
	}
	var b Measurement
	hasBase := ch != nil && ch.HasBase && finite(ch.Base.Median)
	hasBaseRange := false
	if hasBase {
		b = ch.Base
		vals = append(vals, b.Median)
		if usableRange(b) {
			hasBaseRange = true
			vals = append(vals, b.Min, b.Max)
		}
	}
	samples := usableSamples(m)
	vals = append(vals, samples...)
	lo, hi := 0.0, 0.0
	for _, v := range vals {
		if !finite(v) {
			return nil
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if hi <= lo {
		hi = lo + 1
	}
	span := hi - lo
	x := func(v float64) float64 { return chartPad + (v-lo)/span*(chartW-2*chartPad) }
	f := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	c := &htmlChart{
		Width: chartW, Height: chartH, Cls: cls,
		Track1: f(x(lo)), Track2: f(x(hi)),
		Median: f(x(m.Median)), HasRange: hasRange, HasBaseRange: hasBaseRange, HasBaseMd: hasBase,
		Lo: formatValue(lo, m.Units), Hi: formatValue(hi, m.Units),
	}
	title := fmt.Sprintf("now: median %s", formatValue(m.Median, m.Units))
	if hasRange {
		c.RangeX = f(x(m.Min))
		c.RangeW = f(math.Max(1, x(m.Max)-x(m.Min)))
		title += fmt.Sprintf(", min %s, max %s", formatValue(m.Min, m.Units), formatValue(m.Max, m.Units))
	}
	if hasBase {
		c.BaseMedian = f(x(b.Median))
		title += fmt.Sprintf("; baseline: median %s", formatValue(b.Median, m.Units))
		if hasBaseRange {
			c.BaseX = f(x(b.Min))
			c.BaseW = f(math.Max(1, x(b.Max)-x(b.Min)))
			title += fmt.Sprintf(", min %s, max %s", formatValue(b.Min, m.Units), formatValue(b.Max, m.Units))
		}
	}
	step := max(1, (len(samples)+maxChartSamples-1)/maxChartSamples)
	for i := 0; i < len(samples); i += step {
		c.Samples = append(c.Samples, f(x(samples[i])))
	}
	switch {
	case len(samples) == 0:
	case step == 1:
		c.SamplesShown = fmt.Sprintf("%d samples", len(samples))
	default:
		c.SamplesShown = fmt.Sprintf("%d of %d samples", len(c.Samples), len(samples))
	}
	if c.SamplesShown != "" {
		title += "; " + c.SamplesShown
	}
	c.Title = title
	return c
}

func newHTMLComparison(c Comparison) *htmlComparison {
	h := &htmlComparison{
		Regressions: c.Regressions(),
		Threshold:   fmt.Sprintf("%g%%", c.Options.Threshold*100),
		Guard: fmt.Sprintf("a median must move by more than ×%g, a Mann-Whitney U test on the samples must give p < %g and the runs' min–max ranges must be apart by ×%g; with fewer than %d samples a side there is no verdict (not enough data)",
			1+c.Options.Threshold, c.Options.Alpha, 1+c.Options.Threshold/2, c.Options.MinSamples),
	}
	b := c.Base
	add := func(k, v string) {
		if v != "" {
			h.Base = append(h.Base, htmlKV{k, v})
		}
	}
	add("version", orDash(b.Version))
	add("seed", fmt.Sprint(b.Seed))
	add("backends", orDash(strings.Join(b.Backends, ", ")))
	add("profile", b.Profile)
	add("label filter", b.LabelFilter)
	add("started", htmlTime(b.Started))

	kinds := c.caseCounts()
	pc := c.perfCounts()
	h.Counts = []htmlKV{
		{"case regressions", fmt.Sprint(c.caseRegressions())},
		{"fixed", fmt.Sprint(kinds[ChangeFixed])},
		{"lost coverage", fmt.Sprint(kinds[ChangeLostCoverage])},
		{"gained coverage", fmt.Sprint(kinds[ChangeGainedCoverage])},
		{"deviation changes", fmt.Sprint(kinds[ChangeDeviation])},
		{"new cases", fmt.Sprint(kinds[ChangeNew])},
		{"removed cases", fmt.Sprint(kinds[ChangeRemoved])},
		{"unchanged cases", fmt.Sprint(c.Unchanged)},
		{"perf worse", fmt.Sprint(pc.worse)},
		{"perf better", fmt.Sprint(pc.better)},
		{"perf same", fmt.Sprint(pc.same)},
		{"perf unrated", fmt.Sprint(pc.unrated)},
		{"perf new / removed", fmt.Sprintf("%d / %d", pc.added, pc.removed)},
	}
	for _, x := range c.Cases {
		cls := "same"
		switch {
		case x.Regression():
			cls = "fail"
		case x.Kind == ChangeFixed || x.Kind == ChangeGainedCoverage:
			cls = "pass"
		case x.Kind == ChangeLostCoverage || x.Kind == ChangeDeviation || x.Kind == ChangeRemoved:
			cls = "skip"
		}
		kind := string(x.Kind)
		if x.Regression() && x.Kind == ChangeNew {
			kind = "new, failing"
		}
		h.Cases = append(h.Cases, htmlChange{Kind: kind, Cls: cls, Name: caseName(Case{Backend: x.Backend, ID: x.ID}),
			Before: orDash(string(x.Before)), After: orDash(string(x.After)), Message: oneLine(x.Message)})
	}
	for _, p := range c.Perf {
		if !p.HasBase || !p.HasCur || !(p.Significant || p.Noisy) {
			continue
		}
		row := htmlPerfChange{
			Verdict: verdictText(p), Cls: verdictClass(p), Case: p.Backend + "/" + p.CaseID, Name: p.Name,
			Base: formatValue(p.Base.Median, p.Units), Cur: formatValue(p.Cur.Median, p.Units),
			Ratio: formatRatio(p.Ratio), Note: p.note(c.Options),
		}
		// Noise is kept apart and folded, or on a busy host it would
		// bury the few rows that matter.
		if p.Significant {
			h.Perf = append(h.Perf, row)
		} else {
			h.NoisyPerf = append(h.NoisyPerf, row)
		}
	}
	return h
}

var htmlTemplate = template.Must(template.New("report").Parse(htmlSource))

// htmlSource is the page. It has no <script> and no external reference;
// the CSS works without classes on <body>, so the page reads fine in a
// mail client or a CI artifact viewer that strips styles.
const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .5em; }
h2 { font-size: 1.2em; margin: 1.5em 0 .5em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .5em; overflow-x: auto; white-space: pre-wrap; word-break: break-word; margin: .3em 0; }
details { margin: .3em 0; }
summary { cursor: pointer; }
.pass { background: #e3f6e3; }
.fail { background: #fbdcdc; }
.skip { background: #fff3cd; }
.dev { background: #e6e0f8; }
.noise { background: #eef; }
.same { }
.verdict { font-size: 1.2em; font-weight: bold; padding: .3em .6em; display: inline-block; }
.case { border: 1px solid #e0b4b4; margin: .6em 0; padding: .3em .6em; }
.muted { color: #666; }
svg .track { stroke: #bbb; stroke-width: 1; }
svg .range { fill: #7a9cc6; }
svg g.fail .range { fill: #d9534f; }
svg g.pass .range { fill: #4cae4c; }
svg .baserange { fill: #ccc; }
svg .median { stroke: #000; stroke-width: 2; }
svg .sample { fill: #000; fill-opacity: .45; }
svg text.axis { font-size: 9px; fill: #555; }
svg .curveline { fill: none; stroke: #36c; stroke-width: 1.5; }
figure.curve { margin: .5em 0; }
svg text.end { text-anchor: end; }
ul.lead { margin: .2em 0; padding-left: 1.2em; }
#verdict { border: 1px solid #ccc; padding: .3em .8em .6em; margin-bottom: 1em; }
svg .basemedian { stroke: #555; stroke-width: 2; stroke-dasharray: 3 2; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<div id="verdict">
<p class="verdict {{.VerdictCls}}">{{.Verdict}}</p>{{with .Cmp}} <p class="verdict {{if .Regressions}}fail{{else}}pass{{end}}">{{if .Regressions}}{{.Regressions}} regressions{{else}}no regressions{{end}} against the baseline</p>{{end}}
<p>{{.VerdictLine}}</p>
{{if .Changed}}<h3>what changed</h3>
<ul class="lead">{{range .Changed}}<li class="{{.Cls}}">{{if .Href}}<a href="{{.Href}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}</li>{{end}}</ul>{{end}}
{{if .FailedLinks}}<h3>failures ({{.Total.Failed}})</h3>
<ul class="lead">{{range .FailedLinks}}<li class="{{.Cls}}"><a href="{{.Href}}">{{.Text}}</a></li>{{end}}</ul>{{end}}
</div>
{{with .Cmp}}
<h2 id="comparison">comparison with the baseline</h2>
<table>
<tr><th colspan="2">baseline</th></tr>
{{range .Base}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
<table>
{{range .Counts}}<tr><th>{{.Key}}</th><td class="num">{{.Value}}</td></tr>
{{end}}</table>
<p class="muted">Perf verdicts: threshold {{.Threshold}}; {{.Guard}}.</p>
{{if .Cases}}<h3>case changes</h3>
<table>
<tr><th>change</th><th>case</th><th>before</th><th>now</th><th>message</th></tr>
{{range .Cases}}<tr class="{{.Cls}}"><td>{{.Kind}}</td><td>{{if .Href}}<a href="{{.Href}}">{{.Name}}</a>{{else}}{{.Name}}{{end}}</td><td>{{.Before}}</td><td>{{.After}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{end}}
{{if .Perf}}<h3>perf changes</h3>
<table>
<tr><th>verdict</th><th>case</th><th>measurement</th><th class="num">baseline</th><th class="num">now</th><th class="num">ratio</th><th>note</th></tr>
{{range .Perf}}<tr class="{{.Cls}}"><td>{{.Verdict}}</td><td>{{.Case}}</td><td>{{.Name}}</td><td class="num">{{.Base}}</td><td class="num">{{.Cur}}</td><td class="num">{{.Ratio}}</td><td>{{.Note}}</td></tr>
{{end}}</table>{{end}}
{{if .NoisyPerf}}<details><summary>{{len .NoisyPerf}} perf changes held back as noise</summary>
<table>
<tr><th>verdict</th><th>case</th><th>measurement</th><th class="num">baseline</th><th class="num">now</th><th class="num">ratio</th><th>why no verdict</th></tr>
{{range .NoisyPerf}}<tr class="{{.Cls}}"><td>{{.Verdict}}</td><td>{{.Case}}</td><td>{{.Name}}</td><td class="num">{{.Base}}</td><td class="num">{{.Cur}}</td><td class="num">{{.Ratio}}</td><td>{{.Note}}</td></tr>
{{end}}</table>
</details>{{end}}
{{end}}
{{if .Archs}}<h2 id="architectures">architectures</h2>
<table class="archs">
<tr><th>architecture</th><th class="num">pass</th><th class="num">fail</th><th class="num">skip</th><th class="num">dev</th><th class="num">total</th><th>platforms</th></tr>
{{range .Archs}}<tr><td>{{.Name}}</td><td class="num {{.PassedCls}}">{{.Passed}}</td><td class="num {{.FailCls}}">{{.Failed}}</td><td class="num {{.SkippedCls}}">{{.Skipped}}</td><td class="num {{.DeviationsCls}}">{{.Dev}}</td><td class="num">{{.Total}}</td><td>{{.Platforms}}</td></tr>
{{end}}</table>
<table class="platforms">
<tr><th>platform</th><th>arch</th><th>backends</th><th>kernel</th><th>CPU</th><th>/dev/kvm</th><th>host profile</th><th class="num">deviations</th><th>label filter</th><th>counts</th><th>report</th><th>status</th></tr>
{{range .Platforms}}<tr><td>{{.Name}}</td><td>{{.Arch}}</td><td>{{.Backends}}</td><td>{{.Kernel}}</td><td>{{.CPU}}</td><td>{{.KVM}}</td><td>{{.Profile}}</td><td class="num">{{.Deviations}}</td><td>{{.Filter}}</td><td>{{.Counts}}</td><td>{{.Source}}</td><td class="{{.StatusCls}}">{{.Status}}</td></tr>
{{end}}</table>
{{range .Platforms}}{{if .Host}}<details><summary>host facts of {{.Name}} ({{len .Host}})</summary>
<table>
{{range .Host}}<tr><th>{{.Name}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
</details>{{end}}{{end}}
{{end}}
<h2 id="summary">summary</h2>
<table>
<tr><th>backend/area</th><th class="num">pass</th><th class="num">fail</th><th class="num">skip</th><th class="num">dev</th><th class="num">total</th><th class="num">time</th></tr>
{{range .Groups}}<tr><td>{{.Name}}</td><td class="num {{.PassedCls}}">{{.Passed}}</td><td class="num {{.FailCls}}">{{.Failed}}</td><td class="num {{.SkippedCls}}">{{.Skipped}}</td><td class="num {{.DeviationsCls}}">{{.Dev}}</td><td class="num">{{.Total}}</td><td class="num">{{.Time}}</td></tr>
{{end}}{{with .Total}}<tr><th>{{.Name}}</th><th class="num">{{.Passed}}</th><th class="num">{{.Failed}}</th><th class="num">{{.Skipped}}</th><th class="num">{{.Dev}}</th><th class="num">{{.Total}}</th><th class="num">{{.Time}}</th></tr>{{end}}
</table>
{{if .Problems}}<h3>report problems</h3>
<ul>{{range .Problems}}<li>{{.}}</li>{{end}}</ul>{{end}}
<h3>run</h3>
<table class="settings">
{{range .Settings}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
{{if .Host}}<details><summary>host facts{{if .Platforms}} common to every platform{{end}} ({{len .Host}})</summary>
<table>
{{range .Host}}<tr><th>{{.Name}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
</details>{{end}}
{{if .Caps}}<h3>backend capabilities</h3>
<table class="caps">
<tr><th>capability</th>{{range .CapBackends}}<th>{{.}}</th>{{end}}</tr>
{{range .Caps}}<tr><th>{{.Name}}</th>{{range .Cells}}<td class="{{.Cls}}">{{.Mark}}{{if .Detail}} <span class="muted">{{.Detail}}</span>{{end}}</td>{{end}}</tr>
{{end}}</table>{{end}}
<h2 id="failed">failed ({{len .Failed}})</h2>
{{range .Failed}}<div class="case" id="{{.ID}}">
<h3 class="{{.Cls}}">{{.Name}} <span class="muted">[{{.State}}, {{.Duration}}]</span></h3>
{{if .FailureLocation}}<p>at {{.FailureLocation}}{{if .Location}} <span class="muted">(spec {{.Location}})</span>{{end}}</p>{{else if .Location}}<p>spec {{.Location}}</p>{{end}}
<pre>{{.Message}}</pre>
{{if .Failure}}<details open><summary>failure</summary><pre>{{.Failure}}</pre></details>{{end}}
{{if .Entries}}<details><summary>report entries ({{len .Entries}})</summary>{{range .Entries}}<h3>{{.Name}}</h3><pre>{{.Value}}</pre>{{end}}</details>{{end}}
{{if .Output}}<details><summary>output</summary><pre>{{.Output}}</pre></details>{{end}}
</div>
{{else}}<p>none</p>
{{end}}
<h2 id="skipped">skipped ({{.SkipTotal}})</h2>
{{range .Skips}}<details><summary><span class="{{.Cls}}">{{len .Cases}}×</span> {{.Reason}}</summary>
<ul>{{range .Cases}}<li>{{.}}</li>{{end}}</ul>
</details>
{{else}}<p>none</p>
{{end}}
{{if .Perf}}<h2 id="perf">perf</h2>
<p class="muted">Charts: every sample as a dot (at most 200), the min–max range as a bar and the median as a solid line{{if .PerfBase}}; the baseline range in grey beneath, its median dashed{{end}}. Each chart has its own axis, from 0 (or the lowest value) to the highest, labelled in the measurement's units.</p>
{{range .Perf}}<h3>{{.Name}}</h3>
{{range .Curves}}{{$c := .}}<figure class="curve"><svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img"><title>{{.Title}}</title>
<line class="track" x1="{{.X0}}" y1="{{.Y0}}" x2="{{.X1}}" y2="{{.Y0}}"/><line class="track" x1="{{.X0}}" y1="{{.Y0}}" x2="{{.X0}}" y2="{{.Y1}}"/>
{{- range .YTicks}}
<text class="axis end" x="{{$c.X0}}" dx="-4" y="{{.Pos}}">{{.Label}}</text>{{end}}
{{- range .XTicks}}
<text class="axis" x="{{.Pos}}" y="{{$c.Y0}}" dy="14">{{.Label}}</text>{{end}}
<polyline class="curveline" points="{{.Points}}"/>
{{- range .Dots}}
<circle class="sample" cx="{{.X}}" cy="{{.Y}}" r="2.5"><title>{{.Title}}</title></circle>{{end}}
</svg><figcaption>{{.Experiment}}: {{.Family}} (median, {{.Units}}) over {{.XUnit}}, log scale</figcaption></figure>
{{end}}<table>
<tr><th>experiment</th><th>measurement</th><th class="num">n</th><th class="num">min</th><th class="num">median</th><th class="num">max</th><th>chart</th>{{if $.PerfBase}}<th class="num">baseline</th><th class="num">ratio</th><th>verdict</th>{{end}}</tr>
{{range .Rows}}<tr><td>{{.Experiment}}</td><td>{{.Name}}{{if .Units}} <span class="muted">({{.Units}})</span>{{end}}</td><td class="num">{{.N}}</td><td class="num">{{.Min}}</td><td class="num">{{.Median}}</td><td class="num">{{.Max}}</td>
<td>{{with .Chart}}<svg width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img"><title>{{.Title}}</title><g class="{{.Cls}}">
<line class="track" x1="{{.Track1}}" y1="24" x2="{{.Track2}}" y2="24"/>
<line class="track" x1="{{.Track1}}" y1="22" x2="{{.Track1}}" y2="26"/><line class="track" x1="{{.Track2}}" y1="22" x2="{{.Track2}}" y2="26"/>
<text class="axis" x="{{.Track1}}" y="36">{{.Lo}}</text><text class="axis end" x="{{.Track2}}" y="36">{{.Hi}}</text>
{{- if .HasBaseRange}}
<rect class="baserange" x="{{.BaseX}}" y="17" width="{{.BaseW}}" height="4"/>{{end}}
{{- if .HasRange}}
<rect class="range" x="{{.RangeX}}" y="10" width="{{.RangeW}}" height="6"/>{{end}}
{{- range .Samples}}
<circle class="sample" cx="{{.}}" cy="6" r="1.5"/>{{end}}
<line class="median" x1="{{.Median}}" y1="2" x2="{{.Median}}" y2="21"/>
{{- if .HasBaseMd}}
<line class="basemedian" x1="{{.BaseMedian}}" y1="2" x2="{{.BaseMedian}}" y2="24"/>{{end}}
</g></svg>{{end}}</td>
{{if $.PerfBase}}<td class="num">{{.BaseMedian}}</td><td class="num">{{.Ratio}}</td><td class="{{.Cls}}" title="{{.Note}}">{{.Verdict}}</td>{{end}}</tr>
{{end}}</table>
{{end}}{{end}}
<h2 id="cases">all cases ({{len .Cases}})</h2>
<table>
<tr><th>backend</th><th>area</th><th>name</th><th>state</th><th class="num">time</th><th>message</th></tr>
{{range .Cases}}<tr class="{{.Cls}}"><td>{{.Backend}}</td><td>{{.Area}}</td><td>{{if .Href}}<a href="{{.Href}}">{{.Name}}</a>{{else}}{{.Name}}{{end}}</td><td>{{.State}}</td><td class="num">{{.Duration}}</td><td>{{.Message}}</td></tr>
{{end}}</table>
</body>
</html>
`
