package reports

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// oneCase is a run with a single kvm case, for transition tests.
func oneCase(state State, msg string) Run {
	return Run{Meta: Meta{Backends: []string{"kvm"}}, Cases: []Case{{Backend: "kvm", Area: "smoke", Name: "a", ID: "smoke/a", State: state, Message: msg}}}
}

func TestCompareCaseTransitions(t *testing.T) {
	const none State = ""
	tests := []struct {
		before, after State
		beforeMsg     string
		afterMsg      string
		want          ChangeKind // "" for no change reported
		regression    bool
	}{
		{StatePassed, StatePassed, "", "", "", false},
		{StatePassed, StateFailed, "", "boom", ChangeRegression, true},
		{StatePassed, StateTimedout, "", "", ChangeRegression, true},
		{StatePassed, StatePanicked, "", "", ChangeRegression, true},
		{StatePassed, StateInterrupted, "", "", ChangeRegression, true},
		{StatePassed, StateAborted, "", "", ChangeRegression, true},
		{StateSkipped, StateFailed, "x", "", ChangeRegression, true},
		{StateDeviation, StateFailed, "known deviation: d", "", ChangeRegression, true},
		{StateFailed, StatePassed, "boom", "", ChangeFixed, false},
		{StateTimedout, StatePassed, "", "", ChangeFixed, false},
		{StateFailed, StateFailed, "boom", "other boom", "", false},
		{StateFailed, StateTimedout, "", "", ChangeFailure, false},
		{StatePanicked, StateFailed, "", "", ChangeFailure, false},
		{StatePassed, StateSkipped, "", "pmu unsupported", ChangeLostCoverage, false},
		{StatePassed, StateDeviation, "", "known deviation: d", ChangeLostCoverage, false},
		{StateFailed, StateSkipped, "", "pmu unsupported", ChangeLostCoverage, false},
		{StateFailed, StateDeviation, "", "known deviation: d", ChangeDeviation, false},
		{StateSkipped, StatePassed, "x", "", ChangeGainedCoverage, false},
		{StateDeviation, StatePassed, "known deviation: d", "", ChangeGainedCoverage, false},
		{StateSkipped, StateDeviation, "x", "known deviation: d", ChangeDeviation, false},
		{StateDeviation, StateSkipped, "known deviation: d", "x", ChangeDeviation, false},
		{StateDeviation, StateDeviation, "known deviation: d", "known deviation: d", "", false},
		{StateDeviation, StateDeviation, "known deviation: d", "known deviation: e", ChangeDeviation, false},
		{StateSkipped, StateSkipped, "x", "y", "", false},
		{none, StatePassed, "", "", ChangeNew, false},
		{none, StateFailed, "", "boom", ChangeNew, true},
		{none, StateSkipped, "", "", ChangeNew, false},
		{StatePassed, none, "", "", ChangeRemoved, false},
		{StateFailed, none, "boom", "", ChangeRemoved, false},
	}
	for _, tt := range tests {
		base, cur := oneCase(tt.before, tt.beforeMsg), oneCase(tt.after, tt.afterMsg)
		if tt.before == none {
			base.Cases = nil
		}
		if tt.after == none {
			cur.Cases = nil
		}
		cmp := Compare(base, cur, CompareOptions{})
		name := string(tt.before) + "→" + string(tt.after)
		if tt.want == "" {
			if len(cmp.Cases) != 0 || cmp.Unchanged != 1 {
				t.Errorf("%s: changes %+v, unchanged %d; want none", name, cmp.Cases, cmp.Unchanged)
			}
			continue
		}
		if len(cmp.Cases) != 1 {
			t.Errorf("%s: %d changes, want 1", name, len(cmp.Cases))
			continue
		}
		ch := cmp.Cases[0]
		if ch.Kind != tt.want || ch.Before != tt.before || ch.After != tt.after || ch.Backend != "kvm" || ch.ID != "smoke/a" {
			t.Errorf("%s: %+v, want kind %q", name, ch, tt.want)
		}
		if ch.Regression() != tt.regression {
			t.Errorf("%s: Regression() = %v, want %v", name, ch.Regression(), tt.regression)
		}
		if want := map[bool]int{true: 1}[tt.regression]; cmp.Regressions() != want {
			t.Errorf("%s: Regressions() = %d, want %d", name, cmp.Regressions(), want)
		}
		wantMsg := tt.afterMsg
		if tt.after == none {
			wantMsg = tt.beforeMsg
		}
		if ch.Message != wantMsg {
			t.Errorf("%s: message %q, want %q", name, ch.Message, wantMsg)
		}
	}
}

func TestCompareCasesKeyedByBackend(t *testing.T) {
	// The same ID on two backends is two cases; and the order puts
	// regressions (including new failing cases) before the rest.
	c := func(backend, id string, s State) Case {
		return Case{Backend: backend, Area: "smoke", ID: id, State: s}
	}
	base := Run{Cases: []Case{c("kvm", "smoke/a", StatePassed), c("emu", "smoke/a", StateFailed), c("emu", "smoke/gone", StatePassed)}}
	cur := Run{Cases: []Case{c("kvm", "smoke/a", StatePassed), c("emu", "smoke/a", StatePassed), c("emu", "smoke/new", StateFailed), c("kvm", "smoke/b", StateFailed)}}
	cmp := Compare(base, cur, CompareOptions{})
	var got []string
	for _, x := range cmp.Cases {
		got = append(got, x.Backend+"/"+x.ID+" "+string(x.Kind))
	}
	want := []string{"emu/smoke/new new", "kvm/smoke/b new", "emu/smoke/gone removed", "emu/smoke/a fixed"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("changes\n got %q\nwant %q", got, want)
	}
	if cmp.Unchanged != 1 || cmp.Regressions() != 2 {
		t.Errorf("unchanged %d, regressions %d; want 1, 2", cmp.Unchanged, cmp.Regressions())
	}
}

func TestUnitDirection(t *testing.T) {
	tests := []struct {
		units string
		want  Direction
	}{
		{"ns", LowerIsBetter},
		{"µs", LowerIsBetter},
		{"μs", LowerIsBetter}, // Greek mu, as some keyboards type it
		{"us", LowerIsBetter},
		{"ms", LowerIsBetter},
		{"s", LowerIsBetter},
		{"seconds", LowerIsBetter},
		{"ns/page", LowerIsBetter},
		{"ns/op", LowerIsBetter},
		{"ns/entry", LowerIsBetter},
		{"cycles", LowerIsBetter},
		{" (ms) ", LowerIsBetter},
		{"pages/s", HigherIsBetter},
		{"/s", HigherIsBetter},
		{"Minsn/s", HigherIsBetter},
		{"Maccess/s", HigherIsBetter},
		{"exits/s", HigherIsBetter},
		{"MiB/ms", HigherIsBetter},
		{"", DirectionUnknown},
		{"exits", DirectionUnknown},
		{"pages", DirectionUnknown},
		{"bytes/page", DirectionUnknown},
		{"%", DirectionUnknown},
		{"nss", DirectionUnknown},
	}
	for _, tt := range tests {
		if got := UnitDirection(tt.units); got != tt.want {
			t.Errorf("UnitDirection(%q) = %v, want %v", tt.units, got, tt.want)
		}
	}
}

func TestMeasurementDirectionFromName(t *testing.T) {
	tests := []struct {
		name, units string
		want        Direction
	}{
		{"overall pages/s", "", HigherIsBetter}, // the pagefault suite's rates
		{"per-vcpu pages/s", "", HigherIsBetter},
		{"latency (ms)", "", LowerIsBetter},
		{"dirty pass", "", DirectionUnknown},
		{"pass s", "", LowerIsBetter},
		{"pages/s", "", DirectionUnknown}, // one word is a name, not a unit
		{"overall pages/s", "pages", DirectionUnknown},
		{"get dirty log", "ns", LowerIsBetter},
	}
	for _, tt := range tests {
		if got := measurementDirection(Measurement{Name: tt.name, Units: tt.units}); got != tt.want {
			t.Errorf("direction of %q [%q] = %v, want %v", tt.name, tt.units, got, tt.want)
		}
	}
}

// ranged is a measurement with a spread of n samples, as version 1
// reports had it: statistics without the samples.
func ranged(units string, n int, lo, med, hi float64) Measurement {
	return Measurement{Experiment: "e", Name: "m", Units: units, N: n, Min: lo, Median: med, Mean: med, Max: hi}
}

// sampled is a measurement with its samples (schema version 2).
func sampled(units string, vals ...float64) Measurement {
	m := Measurement{Experiment: "e", Name: "m", Units: units, N: len(vals), Samples: vals}
	sorted := slices.Sorted(slices.Values(vals))
	if len(sorted) > 0 {
		m.Min, m.Max = sorted[0], sorted[len(sorted)-1]
		m.Median = sorted[len(sorted)/2]
		if len(sorted)%2 == 0 {
			m.Median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
	}
	return m
}

// around is n samples spread ±5 % around v.
func around(units string, n int, v float64) Measurement {
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = v * (0.95 + 0.1*float64(i)/float64(max(1, n-1)))
	}
	return sampled(units, vals...)
}

func named(m Measurement, name string) Measurement {
	m.Name = name
	return m
}

func perfRun(m ...Measurement) Run {
	return Run{Cases: []Case{{Backend: "kvm", Area: "perf", Name: "p", ID: "perf/p", State: StatePassed, Perf: m}}}
}

func TestComparePerfVerdicts(t *testing.T) {
	wide := []float64{1, 2, 3, 100, 200, 300, 1000}
	wideUp := []float64{1, 2, 3, 150, 200, 300, 1000}
	tests := []struct {
		name               string
		base, cur          Measurement
		opt                CompareOptions
		want               Verdict
		significant, noisy bool
		notEnough          bool
	}{
		{"within threshold", around("ns", 10, 100), around("ns", 10, 115), CompareOptions{}, VerdictSame, false, false, false},
		{"worse", around("ns", 10, 100), around("ns", 10, 150), CompareOptions{}, VerdictWorse, true, false, false},
		{"better", around("ns", 10, 150), around("ns", 10, 100), CompareOptions{}, VerdictBetter, true, false, false},
		{"custom threshold", around("ns", 10, 100), around("ns", 10, 150), CompareOptions{Threshold: 0.6}, VerdictSame, false, false, false},
		// The median rose 50 %, but the samples overlap: the U test does
		// not tell the runs apart.
		{"overlapping samples", sampled("ns", wide...), sampled("ns", wideUp...), CompareOptions{}, VerdictSame, false, true, false},
		// Significant by the test, but one slow sample of the baseline
		// reaches past the new run's: a loaded host, not a change.
		{"ranges overlap", sampled("ns", 95, 97, 99, 100, 101, 103, 105, 300), around("ns", 8, 160), CompareOptions{}, VerdictSame, false, true, false},
		// The case: one 5 ms outlier against one 30 µs sample.
		{"single samples ×183", sampled("ns", 30e3), sampled("ns", 5.5e6), CompareOptions{}, VerdictNotEnough, false, false, true},
		{"four samples are few", around("ns", 4, 100), around("ns", 4, 500), CompareOptions{}, VerdictNotEnough, false, false, true},
		{"min samples lowered", around("ns", 4, 100), around("ns", 4, 500), CompareOptions{MinSamples: 4}, VerdictWorse, true, false, false},
		{"stricter alpha", around("ns", 4, 100), around("ns", 4, 500), CompareOptions{MinSamples: 4, Alpha: 0.01}, VerdictSame, false, true, false},
		// Version 1 reports kept no samples.
		{"no samples (schema 1)", ranged("ns", 5, 90, 100, 110), ranged("ns", 5, 130, 150, 160), CompareOptions{}, VerdictNotEnough, false, false, true},
		{"samples disagree with n", Measurement{Experiment: "e", Name: "m", Units: "ns", N: 9, Median: 100, Samples: []float64{100, 100, 100, 100, 100}}, around("ns", 5, 200), CompareOptions{}, VerdictNotEnough, false, false, true},
		{"NaN sample", sampled("ns", 100, 100, math.NaN(), 100, 100), around("ns", 5, 200), CompareOptions{}, VerdictNotEnough, false, false, true},
		// Rates: a fall is worse.
		{"rate falls", around("pages/s", 8, 10000), around("pages/s", 8, 6000), CompareOptions{}, VerdictWorse, true, false, false},
		{"rate rises", around("Minsn/s", 8, 100), around("Minsn/s", 8, 160), CompareOptions{}, VerdictBetter, true, false, false},
		{"rate from the name", func() Measurement { m := around("", 8, 10000); m.Name = "overall pages/s"; return m }(),
			func() Measurement { m := around("", 8, 6000); m.Name = "overall pages/s"; return m }(), CompareOptions{}, VerdictWorse, true, false, false},
		{"ns/page rises", around("ns/page", 8, 10), around("ns/page", 8, 16), CompareOptions{}, VerdictWorse, true, false, false},
		{"unknown units", around("exits", 8, 10), around("exits", 8, 16), CompareOptions{}, VerdictNone, true, false, false},
		{"unknown units, same", around("exits", 8, 10), around("exits", 8, 10), CompareOptions{}, VerdictNone, false, false, false},
		{"zero baseline", sampled("ns", 0, 0, 0, 0, 0), around("ns", 5, 2), CompareOptions{}, VerdictNone, false, false, false},
		{"both zero", sampled("ns", 0, 0, 0, 0, 0), sampled("ns", 0, 0, 0, 0, 0), CompareOptions{}, VerdictSame, false, false, false},
		{"negative baseline", sampled("ns", -3, -2, -1, -2, -2), around("ns", 5, 2), CompareOptions{}, VerdictNone, false, false, false},
		{"drop to zero", around("ns", 6, 100), sampled("ns", 0, 0, 0, 0, 0, 0), CompareOptions{}, VerdictBetter, true, false, false},
	}
	for _, tt := range tests {
		cmp := Compare(perfRun(tt.base), perfRun(tt.cur), tt.opt)
		if len(cmp.Perf) != 1 {
			t.Errorf("%s: %d perf changes, want 1", tt.name, len(cmp.Perf))
			continue
		}
		p := cmp.Perf[0]
		if p.Verdict != tt.want || p.Significant != tt.significant || p.Noisy != tt.noisy || p.NotEnoughData != tt.notEnough {
			t.Errorf("%s: verdict %q significant %v noisy %v not enough %v (ratio %g, p %g); want %q %v %v %v",
				tt.name, p.Verdict, p.Significant, p.Noisy, p.NotEnoughData, p.Ratio, p.P, tt.want, tt.significant, tt.noisy, tt.notEnough)
		}
		if want := map[bool]int{true: 1}[tt.want == VerdictWorse]; cmp.Regressions() != want {
			t.Errorf("%s: Regressions() = %d, want %d", tt.name, cmp.Regressions(), want)
		}
		if !p.HasBase || !p.HasCur || p.Backend != "kvm" || p.CaseID != "perf/p" {
			t.Errorf("%s: keys %+v", tt.name, p)
		}
	}
}

// Two runs of one build, noisy as these hosts are, compare without a
// regression: the samples come from one distribution.
func TestCompareSameBuildNoRegression(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func() Measurement {
		vals := make([]float64, 20)
		for i := range vals {
			vals[i] = 30e3 * math.Exp(rng.NormFloat64()*0.5) // log-normal, ±65 %
		}
		vals[rng.IntN(20)] = 5e6 // and one outlier
		return sampled("ns", vals...)
	}
	worse := 0
	for range 200 {
		if Compare(perfRun(draw()), perfRun(draw()), CompareOptions{}).Regressions() > 0 {
			worse++
		}
	}
	// Alpha 0.05 and the threshold together: a few false alarms in 200
	// at most, not one per run.
	if worse > 10 {
		t.Errorf("%d of 200 comparisons of one distribution called a regression", worse)
	}
}

func TestComparePerfNewRemovedAndOrder(t *testing.T) {
	m := func(exp, name string, med float64) Measurement {
		x := around("ns", 6, med)
		x.Experiment, x.Name = exp, name
		return x
	}
	base := perfRun(m("e", "same", 100), m("e", "gets worse", 100), m("e", "gone", 100), m("other", "gets worse", 100))
	cur := perfRun(m("e", "same", 101), m("e", "gets worse", 200), m("e", "added", 100), m("other", "gets worse", 100))
	cmp := Compare(base, cur, CompareOptions{})
	var got []string
	for _, p := range cmp.Perf {
		got = append(got, p.Experiment+"/"+p.Name+"="+string(p.Verdict))
	}
	// Worse first; the experiment is part of the key.
	want := "e/gets worse=worse; e/same=same; other/gets worse=same; e/added=; e/gone="
	if strings.Join(got, "; ") != want {
		t.Errorf("perf order\n got %s\nwant %s", strings.Join(got, "; "), want)
	}
	for _, p := range cmp.Perf {
		switch p.Name {
		case "added":
			if p.HasBase || !p.HasCur || p.Ratio != 0 {
				t.Errorf("added: %+v", p)
			}
		case "gone":
			if !p.HasBase || p.HasCur || p.Ratio != 0 {
				t.Errorf("gone: %+v", p)
			}
		}
	}
	if cmp.Regressions() != 1 {
		t.Errorf("Regressions() = %d, want 1", cmp.Regressions())
	}
}

func TestComparePerfRepeatedName(t *testing.T) {
	// Two measurements with one name in one case pair up in order rather
	// than the second overwriting the first.
	base := perfRun(around("ns", 5, 10), around("ns", 5, 100))
	cur := perfRun(around("ns", 5, 10), around("ns", 5, 1000))
	cmp := Compare(base, cur, CompareOptions{})
	if len(cmp.Perf) != 2 || cmp.Perf[0].Verdict != VerdictWorse || cmp.Perf[0].Base.Median != 100 || cmp.Perf[1].Verdict != VerdictSame {
		t.Errorf("perf %+v", cmp.Perf)
	}
}

func TestCompareOptionsDefaults(t *testing.T) {
	tests := []struct {
		in   CompareOptions
		want CompareOptions
	}{
		{CompareOptions{}, CompareOptions{0.2, 5, 0.05}},
		{CompareOptions{Threshold: -1, MinSamples: -1, Alpha: -1}, CompareOptions{0.2, 5, 0.05}},
		{CompareOptions{Threshold: math.NaN(), Alpha: math.NaN()}, CompareOptions{0.2, 5, 0.05}},
		{CompareOptions{Threshold: math.Inf(1), Alpha: 1}, CompareOptions{0.2, 5, 0.05}},
		{CompareOptions{Threshold: 0.5, MinSamples: 8, Alpha: 0.01}, CompareOptions{0.5, 8, 0.01}},
	}
	for _, tt := range tests {
		if got := tt.in.withDefaults(); got != tt.want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tt.in, got, tt.want)
		}
		if got := Compare(Run{}, Run{}, tt.in).Options; got != tt.want {
			t.Errorf("Compare(%+v).Options = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestComparisonText(t *testing.T) {
	base := Run{Meta: Meta{Version: "0.1.0", Seed: 1}, Cases: []Case{
		{Backend: "kvm", Area: "smoke", ID: "smoke/fixed", State: StateFailed},
		{Backend: "kvm", Area: "smoke", ID: "smoke/breaks", State: StatePassed},
		{Backend: "kvm", Area: "perf", ID: "perf/p", State: StatePassed, Perf: []Measurement{
			around("ns", 6, 100), named(around("", 6, 100), "rate pages/s"),
			named(sampled("ns", 1, 2, 3, 100, 200, 300, 1000), "noisy"), named(sampled("ns", 100), "single"),
		}},
	}}
	cur := Run{Meta: Meta{Version: "0.2.0", Seed: 2}, Cases: []Case{
		{Backend: "kvm", Area: "smoke", ID: "smoke/fixed", State: StatePassed},
		{Backend: "kvm", Area: "smoke", ID: "smoke/breaks", State: StateFailed, Message: "Expected\n  <int>: 1\nto equal\n  <int>: 2"},
		{Backend: "kvm", Area: "perf", ID: "perf/p", State: StatePassed, Perf: []Measurement{
			around("ns", 6, 2000), named(around("", 6, 200), "rate pages/s"),
			named(sampled("ns", 1, 2, 3, 150, 200, 300, 1000), "noisy"), named(sampled("ns", 10000), "single"),
		}},
	}}
	cmp := Compare(base, cur, CompareOptions{})
	if cmp.Regressions() != 2 {
		t.Errorf("Regressions() = %d, want 2", cmp.Regressions())
	}
	var buf bytes.Buffer
	cmp.Text(&buf)
	out := buf.String()
	wantInOrder := []string{
		"baseline 0.1.0 seed 1 → current 0.2.0 seed 2, threshold 20%, Mann-Whitney U test at p < 0.05 with at least 5 samples",
		"cases: 1 regressions, 1 fixed, 0 lost coverage, 0 gained coverage, 0 deviation changes, 0 new, 0 removed, 1 unchanged",
		"perf: 1 worse, 1 better, 1 same (1 held back as noise), 1 not enough data (fewer than 5 samples), 0 unrated, 0 new, 0 removed",
		"  REGRESSION  kvm/smoke/breaks  passed → failed  Expected 1 to equal 2",
		"  fixed       kvm/smoke/fixed   failed → passed",
		"  WORSE   kvm/perf/p  m             100ns → 2µs  ×20  p=0.00216 n=6+6; range 95ns–105ns → 1.9µs–2.1µs",
		"  better  kvm/perf/p  rate pages/s  100 → 200    ×2   p=0.00216 n=6+6; range 95–105 → 190–210",
		"REGRESSIONS: 2",
	}
	pos := 0
	for _, w := range wantInOrder {
		i := strings.Index(out[pos:], w)
		if i < 0 {
			t.Errorf("Text lacks, or has out of order, %q:\n%s", w, out)
			continue
		}
		pos += i + len(w)
	}
	if strings.Contains(out, "noisy") || strings.Contains(out, "single") {
		t.Errorf("Text lists a measurement the test held back, or one without enough samples:\n%s", out)
	}

	buf.Reset()
	Compare(base, base, CompareOptions{}).Text(&buf)
	if !strings.HasSuffix(buf.String(), "\nNO REGRESSIONS\n") {
		t.Errorf("a run compared with itself:\n%s", buf.String())
	}
}

func TestCompareRealisticRuns(t *testing.T) {
	// normalRun has failures, skips, deviations and perf; against itself
	// nothing may change, and its JSON round trip must not either.
	run := normalRun()
	var buf bytes.Buffer
	if err := run.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	again, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	cmp := Compare(run, again, CompareOptions{})
	if len(cmp.Cases) != 0 || cmp.Unchanged != len(run.Cases) || cmp.Regressions() != 0 {
		t.Errorf("self comparison: %d changes, %d unchanged of %d, %d regressions", len(cmp.Cases), cmp.Unchanged, len(run.Cases), cmp.Regressions())
	}
	for _, p := range cmp.Perf {
		if p.Ratio != 1 || p.Significant || p.Noisy {
			t.Errorf("self comparison of %s: %+v", p.Name, p)
		}
	}
}

func FuzzCompare(f *testing.F) {
	// Small seeds, as for FuzzReadJSON.
	var a, b bytes.Buffer
	small := func(state State, med float64) Run {
		return Run{Meta: Meta{Version: "v", Backends: []string{"kvm"}, Caps: map[string][]CapLine{"kvm": {{Name: "pmu", Detail: "<b>"}}}},
			Cases: []Case{{Backend: "kvm", Area: "perf", Name: "a", ID: "perf/a", State: state, Message: "<script>x</script>",
				Perf: []Measurement{{Name: "p", Units: "ns", N: 3, Min: med / 2, Median: med, Max: med * 2}}}}}
	}
	if err := small(StatePassed, 5).WriteJSON(&a); err != nil {
		f.Fatal(err)
	}
	if err := small(StateFailed, 50).WriteJSON(&b); err != nil {
		f.Fatal(err)
	}
	f.Add(a.Bytes(), b.Bytes())
	f.Add([]byte(`{"schema_version": 1, "cases": [{"state": "passed", "perf": [{"median": -1, "min": 1e308, "max": -1e308}]}]}`),
		[]byte(`{"schema_version": 1, "cases": [{"state": "failed", "perf": [{"median": 0}, {"median": 0}]}]}`))
	f.Add([]byte(`{"schema_version": 1, "meta": {"caps": {"b": [{"name": "x"}], "a": [{"name": "x"}]}}}`), []byte(`{"schema_version": 1}`))
	// Version 2, with samples for the U test.
	f.Add([]byte(`{"schema_version": 2, "meta": {"version": "v", "started": "2026-01-01T00:00:00Z"}, "cases": [{"backend": "k", "id": "a", "state": "passed",
		"perf": [{"name": "p", "units": "ns", "n": 5, "min": 1, "median": 3, "max": 5, "samples": [1, 2, 3, 4, 5]}]}]}`),
		[]byte(`{"schema_version": 2, "meta": {"version": "v", "started": "2026-01-01T00:00:00Z"}, "cases": [{"backend": "k", "id": "a", "state": "passed",
		"perf": [{"name": "p", "units": "ns", "n": 5, "min": 10, "median": 30, "max": 50, "samples": [10, 20, 30, 40, 1e308]}]}]}`))
	f.Fuzz(func(t *testing.T, x, y []byte) {
		base, err := ReadJSON(bytes.NewReader(x))
		if err != nil {
			return
		}
		cur, err := ReadJSON(bytes.NewReader(y))
		if err != nil {
			return
		}
		cmp := Compare(base, cur, CompareOptions{})
		cmp.Text(&bytes.Buffer{})
		if n := cmp.Regressions(); n < 0 || n > len(cur.Cases)+len(cmp.Perf) {
			t.Fatalf("Regressions() = %d with %d cases and %d measurements", n, len(cur.Cases), len(cmp.Perf))
		}
		for _, r := range []*Run{nil, &base} {
			var out bytes.Buffer
			if err := cur.WriteHTML(&out, r); err != nil {
				t.Fatalf("WriteHTML: %v", err)
			}
			if strings.Contains(strings.ToLower(out.String()), "<script") {
				t.Fatalf("report text reached the page unescaped:\n%s", out.String())
			}
		}
	})
}
