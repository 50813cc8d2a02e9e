package reports

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchmath"
)

// Defaults of CompareOptions. Back-to-back runs of the same build on one
// 2-core host move single timings by up to 4× and, across hosts and load,
// by up to 10×: a verdict needs samples and a test on them, as benchstat
// does, not a ratio of two medians.
const (
	DefaultThreshold  = 0.2
	DefaultMinSamples = 5
	DefaultAlpha      = 0.05
)

// CompareOptions tune how Compare judges perf measurements. The zero value
// means the defaults.
type CompareOptions struct {
	// Threshold is the relative change of a median that counts: 0.2 calls
	// a latency worse above ×1.2 and better below ÷1.2 (the bounds are
	// symmetric as ratios, so a change and its undo are judged alike).
	// Zero or less, or NaN, means DefaultThreshold.
	Threshold float64
	// MinSamples is how many samples each run needs for a verdict; with
	// fewer the measurement is "not enough data", never worse. Below 4 a
	// Mann-Whitney U test cannot reach p < 0.05 whatever the numbers.
	// Zero or less means DefaultMinSamples.
	MinSamples int
	// Alpha is the significance level of the Mann-Whitney U test on the
	// two runs' samples (benchstat's default, 0.05). Out of (0, 1), or
	// NaN, means DefaultAlpha.
	Alpha float64
}

func (o CompareOptions) withDefaults() CompareOptions {
	if !(o.Threshold > 0) || math.IsInf(o.Threshold, 0) {
		o.Threshold = DefaultThreshold
	}
	if o.MinSamples <= 0 {
		o.MinSamples = DefaultMinSamples
	}
	if !(o.Alpha > 0 && o.Alpha < 1) {
		o.Alpha = DefaultAlpha
	}
	return o
}

// ChangeKind classifies how a case differs between a baseline and the
// current run.
type ChangeKind string

// Case change kinds, most serious first. A state counts as "failing" when
// State.Failed says so (failed, timedout, panicked, interrupted, aborted).
const (
	// ChangeRegression: the case did not fail before and fails now.
	ChangeRegression ChangeKind = "regression"
	// ChangeLostCoverage: the case passed before and is now skipped or
	// hit by a known deviation, or failed before and is now skipped; in
	// both it no longer tells anything.
	ChangeLostCoverage ChangeKind = "lost coverage"
	// ChangeDeviation: a known deviation appeared or went away (other
	// than from or to passed), or its text changed.
	ChangeDeviation ChangeKind = "deviation"
	// ChangeFailure: the case still fails, in another state (failed →
	// timedout).
	ChangeFailure ChangeKind = "failure changed"
	// ChangeRemoved: the case is in the baseline only.
	ChangeRemoved ChangeKind = "removed"
	// ChangeNew: the case is in the current run only. A new case that
	// fails also counts as a regression (see CaseChange.Regression).
	ChangeNew ChangeKind = "new"
	// ChangeFixed: the case failed before and passes now.
	ChangeFixed ChangeKind = "fixed"
	// ChangeGainedCoverage: the case was skipped or a deviation and
	// passes now.
	ChangeGainedCoverage ChangeKind = "gained coverage"
)

// rank orders change kinds for display, most serious first.
func (k ChangeKind) rank() int {
	for i, x := range []ChangeKind{ChangeRegression, ChangeLostCoverage, ChangeDeviation, ChangeFailure, ChangeRemoved, ChangeNew, ChangeFixed, ChangeGainedCoverage} {
		if k == x {
			return i
		}
	}
	return 99
}

// CaseChange is one case whose state differs between the runs, or that
// only one of them has.
type CaseChange struct {
	Backend string     // "" for suite pseudo-cases
	ID      string     // the case's ID, area/name
	Kind    ChangeKind // how it changed
	Before  State      // state in the baseline, "" when new
	After   State      // state now, "" when removed
	// Message is the current message (failure or skip reason), or the
	// baseline's for a removed case.
	Message string
}

// Regression reports whether the change makes the run worse: a case that
// fails now and did not before, including one the baseline did not have,
// since a nightly comparison must notice a new spec that fails as much as
// an old one.
func (c CaseChange) Regression() bool {
	return c.Kind == ChangeRegression || (c.Kind == ChangeNew && c.After.Failed())
}

// Direction says which way a measurement improves.
type Direction int

// Directions, derived from units by UnitDirection.
const (
	DirectionUnknown Direction = iota // the units say nothing; no verdict
	LowerIsBetter                     // times and times per item
	HigherIsBetter                    // rates: items per unit of time
)

// String returns a short word for reports.
func (d Direction) String() string {
	switch d {
	case LowerIsBetter:
		return "lower is better"
	case HigherIsBetter:
		return "higher is better"
	}
	return "unknown"
}

// UnitDirection derives a measurement's direction from its units: times
// ("ns", "µs", "ms", "s") and times per item ("ns/page", "ns/op") are
// better lower; anything per unit of time ("pages/s", "/s", "Minsn/s",
// "Maccess/s") is better higher; other units, and none, are unknown, so
// that Compare never guesses a verdict.
func UnitDirection(units string) Direction {
	u := strings.Trim(strings.TrimSpace(units), "()[]")
	if num, den, ok := strings.Cut(u, "/"); ok {
		switch {
		case isTimeUnit(den):
			return HigherIsBetter
		case isTimeUnit(num):
			return LowerIsBetter
		}
		return DirectionUnknown
	}
	if isTimeUnit(u) {
		return LowerIsBetter
	}
	return DirectionUnknown
}

func isTimeUnit(u string) bool {
	switch strings.ToLower(strings.TrimSpace(u)) {
	case "ns", "µs", "μs", "us", "ms", "s", "sec", "secs", "second", "seconds",
		"nanosecond", "nanoseconds", "microsecond", "microseconds", "millisecond", "milliseconds",
		"cycle", "cycles":
		return true
	}
	return false
}

// measurementDirection is UnitDirection of the units, or, when a spec
// recorded a value without units, of the last word of its name: specs
// name rates "overall pages/s" and leave gmeasure's units empty.
func measurementDirection(m Measurement) Direction {
	if strings.TrimSpace(m.Units) != "" {
		return UnitDirection(m.Units)
	}
	words := strings.Fields(m.Name)
	if len(words) < 2 {
		return DirectionUnknown
	}
	last := words[len(words)-1]
	if !strings.Contains(last, "/") && !isTimeUnit(strings.Trim(last, "()[]")) {
		// A bare trailing word ("dirty pass") is a name, not a unit.
		return DirectionUnknown
	}
	return UnitDirection(last)
}

// Verdict is Compare's judgement of one measurement.
type Verdict string

// Verdicts. VerdictNone means Compare could not judge: the direction is
// unknown, the measurement is in one run only, or the medians do not give
// a ratio (a baseline median of zero or below). VerdictNotEnough means a
// run has fewer samples than CompareOptions.MinSamples (reports of schema
// version 1 keep none): never a regression.
const (
	VerdictWorse     Verdict = "worse"
	VerdictBetter    Verdict = "better"
	VerdictSame      Verdict = "same"
	VerdictNotEnough Verdict = "not enough data"
	VerdictNone      Verdict = ""
)

// PerfChange compares one measurement, keyed by backend, case ID,
// experiment and measurement name, between the runs.
type PerfChange struct {
	Backend    string
	CaseID     string
	Experiment string
	Name       string
	Units      string
	// Base and Cur are the measurement in the baseline and now; HasBase
	// and HasCur say whether the run has it at all.
	Base, Cur       Measurement
	HasBase, HasCur bool
	// Ratio is Cur.Median / Base.Median, or 0 when there is none (a side
	// missing, a baseline median of zero or below, a non-finite value).
	Ratio     float64
	Direction Direction
	// P is the Mann-Whitney U test's p-value for "both runs' samples come
	// from one distribution", or -1 when no test was made.
	P float64
	// Significant: P < Alpha, the median moved past the threshold and
	// the runs' min–max ranges are apart (see judge). Direction decides
	// whether that is worse.
	Significant bool
	// Noisy: the median moved past the threshold but the test or the
	// ranges did not set the runs apart, so the verdict is "same".
	Noisy bool
	// NotEnoughData: a run has fewer than MinSamples samples.
	NotEnoughData bool
	Verdict       Verdict

	nth int // occurrence of the name within its case, see perfKey
}

// Comparison is the difference between a baseline run and the current
// one, as Compare finds it.
type Comparison struct {
	Base, Cur Meta           // the two runs' metadata, for the headings
	Options   CompareOptions // the options used, defaults filled in
	// Cases are the cases whose state changed or that one run lacks,
	// most serious first (see ChangeKind), then in run order.
	Cases []CaseChange
	// Unchanged counts the cases in both runs with the same state.
	Unchanged int
	// Perf are all measurements of either run: worse first, then better,
	// the rest, and those in one run only; within each, in run order.
	Perf []PerfChange
}

type caseKey struct{ backend, id string }

type perfKey struct {
	backend, id, experiment, name string
	nth                           int // occurrence, should a case repeat a measurement name
}

// Compare compares the current run cur with the baseline base.
//
// Cases are matched on (backend, ID) and classified by ChangeKind.
// Measurements are matched on (backend, case ID, experiment, name) and
// judged on their samples, because timings on shared hosts are noisy and
// a nightly job that cries wolf gets ignored:
//
//   - Each run needs MinSamples samples, or the verdict is "not enough
//     data": one sample has no spread to judge it by.
//   - The samples must differ by a Mann-Whitney U test (benchmath's
//     AssumeNothing, as benchstat uses) at level Alpha, and the medians by
//     more than the ratio 1+Threshold (either way).
//   - The runs' min–max ranges must be apart by the ratio 1+Threshold/2:
//     the test sees the noise within a run, not the shift a loaded host
//     gives a whole run, which on the 2-core hosts kvmspec is developed
//     on moves identical runs by ×2 and more.
//   - Direction, from the units (UnitDirection), turns a significant rise
//     or fall into worse or better; with unknown units the change is
//     reported without a verdict.
func Compare(base, cur Run, opt CompareOptions) Comparison {
	opt = opt.withDefaults()
	cmp := Comparison{Base: base.Meta, Cur: cur.Meta, Options: opt}
	cmp.Cases, cmp.Unchanged = compareCases(base.Cases, cur.Cases)
	cmp.Perf = comparePerf(base.Cases, cur.Cases, opt)
	return cmp
}

func compareCases(base, cur []Case) ([]CaseChange, int) {
	before := map[caseKey]Case{}
	for _, c := range base {
		k := caseKey{c.Backend, c.ID}
		if _, dup := before[k]; !dup { // Validate reports duplicates; the first one wins here
			before[k] = c
		}
	}
	var out []CaseChange
	unchanged := 0
	seen := map[caseKey]bool{}
	for _, c := range cur {
		k := caseKey{c.Backend, c.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		b, ok := before[k]
		if !ok {
			out = append(out, CaseChange{Backend: c.Backend, ID: c.ID, Kind: ChangeNew, After: c.State, Message: c.Message})
			continue
		}
		kind, changed := transition(b, c)
		if !changed {
			unchanged++
			continue
		}
		out = append(out, CaseChange{Backend: c.Backend, ID: c.ID, Kind: kind, Before: b.State, After: c.State, Message: c.Message})
	}
	for _, b := range base {
		k := caseKey{b.Backend, b.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, CaseChange{Backend: b.Backend, ID: b.ID, Kind: ChangeRemoved, Before: b.State, Message: b.Message})
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := out[i].Kind.rank(), out[j].Kind.rank()
		if out[i].Regression() != out[j].Regression() {
			return out[i].Regression() // a new failing case is as urgent as a regression
		}
		return ri < rj
	})
	return out, unchanged
}

// class folds the states into the four that matter for a transition.
func class(s State) byte {
	switch {
	case s == StatePassed:
		return 'P'
	case s == StateDeviation:
		return 'D'
	case s.Failed():
		return 'F'
	}
	return 'S'
}

// transition classifies the change of one case; changed is false when
// nothing worth reporting changed.
func transition(b, c Case) (kind ChangeKind, changed bool) {
	from, to := class(b.State), class(c.State)
	switch {
	case from != 'F' && to == 'F':
		return ChangeRegression, true
	case from == 'F' && to == 'P':
		return ChangeFixed, true
	case from == 'F' && to == 'F':
		return ChangeFailure, b.State != c.State
	case from == 'P' && (to == 'S' || to == 'D'), from == 'F' && to == 'S':
		return ChangeLostCoverage, true
	case (from == 'S' || from == 'D') && to == 'P':
		return ChangeGainedCoverage, true
	case from == 'D' && to == 'D':
		// The same deviation under a new description is a profile change
		// a reviewer should see; what it observed may differ run to run.
		return ChangeDeviation, deviationKey(b) != deviationKey(c)
	case from == 'D' || to == 'D':
		return ChangeDeviation, true
	}
	// passed → passed, skipped → skipped (a changed skip reason is a
	// host difference, which the capability tables show).
	return "", false
}

func comparePerf(base, cur []Case, opt CompareOptions) []PerfChange {
	type entry struct {
		c Case
		m Measurement
	}
	index := func(cases []Case) ([]perfKey, map[perfKey]entry) {
		var keys []perfKey
		m := map[perfKey]entry{}
		for _, c := range cases {
			for _, x := range c.Perf {
				k := perfKey{c.Backend, c.ID, x.Experiment, x.Name, 0}
				for {
					if _, dup := m[k]; !dup {
						break
					}
					k.nth++
				}
				keys = append(keys, k)
				m[k] = entry{c, x}
			}
		}
		return keys, m
	}
	bkeys, bm := index(base)
	ckeys, cm := index(cur)
	var out []PerfChange
	for _, k := range ckeys {
		e := cm[k]
		p := PerfChange{Backend: k.backend, CaseID: k.id, Experiment: k.experiment, Name: k.name, Units: e.m.Units, Cur: e.m, HasCur: true, nth: k.nth}
		if b, ok := bm[k]; ok {
			p.Base, p.HasBase = b.m, true
		}
		judge(&p, opt)
		out = append(out, p)
	}
	for _, k := range bkeys {
		if _, ok := cm[k]; ok {
			continue
		}
		b := bm[k]
		p := PerfChange{Backend: k.backend, CaseID: k.id, Experiment: k.experiment, Name: k.name, Units: b.m.Units, Base: b.m, HasBase: true, nth: k.nth}
		judge(&p, opt)
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].rank() < out[j].rank() })
	return out
}

func (p PerfChange) rank() int {
	switch {
	case p.Verdict == VerdictWorse:
		return 0
	case p.Verdict == VerdictBetter:
		return 1
	case !p.HasBase || !p.HasCur:
		return 3
	}
	return 2
}

// judge fills in the ratio, test, direction and verdict of p.
func judge(p *PerfChange, opt CompareOptions) {
	m := p.Cur
	if !p.HasCur {
		m = p.Base
	}
	p.P = -1
	p.Direction = measurementDirection(m)
	if !p.HasBase || !p.HasCur {
		return
	}
	b, c := p.Base, p.Cur
	if !finite(b.Median) || !finite(c.Median) || b.Median <= 0 || c.Median < 0 {
		// No ratio to judge by: a zero or negative baseline, or a value
		// JSON cannot even carry.
		if b.Median == c.Median && finite(b.Median) && p.Direction != DirectionUnknown {
			p.Verdict = VerdictSame
		}
		return
	}
	p.Ratio = c.Median / b.Median
	moved := p.Ratio > 1+opt.Threshold || p.Ratio*(1+opt.Threshold) < 1
	bs, cs := usableSamples(b), usableSamples(c)
	if len(bs) < opt.MinSamples || len(cs) < opt.MinSamples {
		p.NotEnoughData = true
		if p.Direction != DirectionUnknown {
			p.Verdict = VerdictNotEnough
		}
		return
	}
	th := benchmath.DefaultThresholds
	th.CompareAlpha = opt.Alpha
	// NewSample sorts its values; the report's stay in run order.
	cmp := benchmath.AssumeNothing.Compare(benchmath.NewSample(slices.Clone(bs), &th), benchmath.NewSample(slices.Clone(cs), &th))
	p.P = cmp.P
	// The test sees only the spread within each run. Load on a shared
	// host shifts whole runs by ×2 and more, so a verdict also needs the
	// runs' ranges apart: the new min above the old max × (1+Threshold/2)
	// for a rise, the new max below the old min ÷ (1+Threshold/2) for a
	// fall. Two runs of one build then do not gate each other.
	margin := 1 + opt.Threshold/2
	apart := true
	if usableRange(b) && usableRange(c) {
		if c.Median > b.Median {
			apart = c.Min > b.Max*margin
		} else {
			apart = c.Max*margin < b.Min
		}
	}
	p.Significant = moved && cmp.P < cmp.Alpha && apart
	p.Noisy = moved && !p.Significant
	if p.Direction == DirectionUnknown {
		return
	}
	p.Verdict = VerdictSame
	if p.Significant {
		rose := p.Ratio > 1
		if rose == (p.Direction == LowerIsBetter) {
			p.Verdict = VerdictWorse
		} else {
			p.Verdict = VerdictBetter
		}
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// usableSamples are m's samples if they agree with its count and are all
// finite; a hand-edited or truncated report gets no verdict.
func usableSamples(m Measurement) []float64 {
	if len(m.Samples) != m.N {
		return nil
	}
	for _, v := range m.Samples {
		if !finite(v) {
			return nil
		}
	}
	return m.Samples
}

// usableRange reports whether m's min and max describe a spread: at least
// two samples and min ≤ median ≤ max. Hand-made or old reports may lack
// min and max (zero), and those must not pass as a narrow range.
func usableRange(m Measurement) bool {
	return m.N >= 2 && finite(m.Min) && finite(m.Max) && m.Min <= m.Median && m.Median <= m.Max
}

// Regressions counts what should fail a nightly comparison: cases that
// fail now and did not before (Regression) and measurements gone worse.
func (c Comparison) Regressions() int {
	n := c.caseRegressions()
	for _, p := range c.Perf {
		if p.Verdict == VerdictWorse {
			n++
		}
	}
	return n
}

// perfCounts tallies measurements by outcome for the headings; noisy
// counts the ones among same that the test held back, few the ones with
// too few samples for a verdict.
type perfCounts struct{ worse, better, same, noisy, few, unrated, added, removed int }

func (c Comparison) perfCounts() perfCounts {
	var n perfCounts
	for _, p := range c.Perf {
		switch {
		case !p.HasBase:
			n.added++
		case !p.HasCur:
			n.removed++
		case p.Verdict == VerdictWorse:
			n.worse++
		case p.Verdict == VerdictBetter:
			n.better++
		case p.Verdict == VerdictSame:
			n.same++
			if p.Noisy {
				n.noisy++
			}
		case p.NotEnoughData:
			n.few++
		default:
			n.unrated++
		}
	}
	return n
}

// caseCounts tallies case changes by kind.
func (c Comparison) caseCounts() map[ChangeKind]int {
	n := map[ChangeKind]int{}
	for _, x := range c.Cases {
		n[x.Kind]++
	}
	return n
}

// Text writes the comparison as a compact table for a terminal or a CI
// log: a heading with the counts, the changed cases (regressions first),
// the measurements judged worse or better or, with unknown units, changed
// (the ones the noise guard held back are only counted; the HTML report
// marks them), and a last line CI tools can read: "REGRESSIONS: N" or
// "NO REGRESSIONS".
func (c Comparison) Text(w io.Writer) {
	fmt.Fprintf(w, "baseline %s → current %s, threshold %g%%, Mann-Whitney U test at p < %g with at least %d samples\n",
		runLabel(c.Base), runLabel(c.Cur), c.Options.Threshold*100, c.Options.Alpha, c.Options.MinSamples)
	kinds := c.caseCounts()
	fmt.Fprintf(w, "cases: %d regressions, %d fixed, %d lost coverage, %d gained coverage, %d deviation changes, %d new, %d removed, %d unchanged\n",
		c.caseRegressions(), kinds[ChangeFixed], kinds[ChangeLostCoverage], kinds[ChangeGainedCoverage], kinds[ChangeDeviation], kinds[ChangeNew], kinds[ChangeRemoved], c.Unchanged)
	pc := c.perfCounts()
	fmt.Fprintf(w, "perf: %d worse, %d better, %d same (%d held back as noise), %d not enough data (fewer than %d samples), %d unrated, %d new, %d removed\n",
		pc.worse, pc.better, pc.same, pc.noisy, pc.few, c.Options.MinSamples, pc.unrated, pc.added, pc.removed)

	if len(c.Cases) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, x := range c.Cases {
			kind := string(x.Kind)
			if x.Regression() {
				kind = strings.ToUpper(string(ChangeRegression))
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s → %s\t%s\n", kind, caseName(Case{Backend: x.Backend, ID: x.ID}), orDash(string(x.Before)), orDash(string(x.After)), oneLine(x.Message))
		}
		tw.Flush()
	}

	var rows []PerfChange
	for _, p := range c.Perf {
		if p.HasBase && p.HasCur && (p.Verdict == VerdictWorse || p.Verdict == VerdictBetter || p.Significant) {
			rows = append(rows, p)
		}
	}
	if len(rows) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, p := range rows {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s → %s\t%s\t%s\n", p.verdictWord(), p.Backend+"/"+p.CaseID, p.Name,
				formatValue(p.Base.Median, p.Units), formatValue(p.Cur.Median, p.Units), formatRatio(p.Ratio), p.note(c.Options))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if n := c.Regressions(); n > 0 {
		fmt.Fprintf(w, "REGRESSIONS: %d\n", n)
	} else {
		fmt.Fprintln(w, "NO REGRESSIONS")
	}
}

func (c Comparison) caseRegressions() int {
	n := 0
	for _, x := range c.Cases {
		if x.Regression() {
			n++
		}
	}
	return n
}

// verdictWord is the first column of a perf row in Text.
func (p PerfChange) verdictWord() string {
	switch {
	case p.Verdict == VerdictWorse:
		return "WORSE"
	case p.Verdict == VerdictBetter:
		return "better"
	case p.Significant:
		return "changed"
	case p.Noisy:
		return "noise"
	case p.NotEnoughData:
		return "few samples"
	}
	return string(p.Verdict)
}

// note explains a row: the test, why a large change got no verdict, and
// the ranges.
func (p PerfChange) note(opt CompareOptions) string {
	var parts []string
	if p.Direction == DirectionUnknown {
		parts = append(parts, "units "+orDash(p.Units)+": direction unknown")
	}
	switch {
	case p.NotEnoughData:
		parts = append(parts, fmt.Sprintf("n=%d→%d: not enough data (a verdict needs %d samples a side)", p.Base.N, p.Cur.N, opt.MinSamples))
	case p.P >= 0:
		parts = append(parts, fmt.Sprintf("p=%.3g n=%d+%d", p.P, p.Base.N, p.Cur.N))
	}
	if p.Noisy {
		if p.P < opt.Alpha {
			parts = append(parts, "ranges overlap")
		} else {
			parts = append(parts, fmt.Sprintf("not significant at p < %g", opt.Alpha))
		}
	}
	if usableRange(p.Base) && usableRange(p.Cur) {
		parts = append(parts, fmt.Sprintf("range %s–%s → %s–%s",
			formatValue(p.Base.Min, p.Units), formatValue(p.Base.Max, p.Units), formatValue(p.Cur.Min, p.Units), formatValue(p.Cur.Max, p.Units)))
	}
	return strings.Join(parts, "; ")
}

func formatRatio(r float64) string {
	if r == 0 {
		return "-"
	}
	return fmt.Sprintf("×%.3g", r)
}

// runLabel names a run in comparison headings: version, seed and start.
func runLabel(m Meta) string {
	s := orDash(m.Version) + " seed " + fmt.Sprint(m.Seed)
	if !m.Started.IsZero() {
		s += " " + m.Started.UTC().Format("2006-01-02T15:04Z")
	}
	return s
}

// deviationKey identifies the deviation that judged a case: its profile
// entry where the report records it, else (older reports) the message.
func deviationKey(c Case) string {
	if d := c.Deviation; d != nil {
		return d.Profile + "\x00" + d.ID + "\x00" + d.Reason
	}
	return c.Message
}
