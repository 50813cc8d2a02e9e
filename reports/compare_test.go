package reports

import (
	"bytes"
	"math"
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

// ranged is a measurement with a spread of n samples.
func ranged(units string, n int, lo, med, hi float64) Measurement {
	return Measurement{Experiment: "e", Name: "m", Units: units, N: n, Min: lo, Median: med, Mean: med, Max: hi}
}

func perfRun(m ...Measurement) Run {
	return Run{Cases: []Case{{Backend: "kvm", Area: "perf", Name: "p", ID: "perf/p", State: StatePassed, Perf: m}}}
}

func TestComparePerfVerdicts(t *testing.T) {
	tests := []struct {
		name              string
		base, cur         Measurement
		opt               CompareOptions
		want              Verdict
		significant       bool
		noisy, fewSamples bool
	}{
		{"within threshold", ranged("ns", 5, 90, 100, 110), ranged("ns", 5, 100, 115, 120), CompareOptions{}, VerdictSame, false, false, false},
		{"worse, ranges apart", ranged("ns", 5, 90, 100, 110), ranged("ns", 5, 130, 150, 160), CompareOptions{}, VerdictWorse, true, false, false},
		{"better, ranges apart", ranged("ns", 5, 130, 150, 160), ranged("ns", 5, 90, 100, 110), CompareOptions{}, VerdictBetter, true, false, false},
		// 1.2 is not past ×1.2; the smallest step above it is.
		{"threshold edge, at", ranged("ns", 5, 10, 100, 100), ranged("ns", 5, 120, 120, 130), CompareOptions{}, VerdictSame, false, false, false},
		{"threshold edge, past", ranged("ns", 5, 10, 100, 100), ranged("ns", 5, 120.001, 120.001, 130), CompareOptions{}, VerdictWorse, true, false, false},
		{"threshold edge, fall", ranged("ns", 5, 100, 120, 130), ranged("ns", 5, 10, 100, 100), CompareOptions{}, VerdictSame, false, false, false},
		{"threshold edge, fall past", ranged("ns", 5, 120.001, 120.001, 130), ranged("ns", 5, 10, 100, 100), CompareOptions{}, VerdictBetter, true, false, false},
		{"custom threshold", ranged("ns", 5, 90, 100, 110), ranged("ns", 5, 130, 150, 160), CompareOptions{Threshold: 0.6}, VerdictSame, false, false, false},
		// Noise guard: the median rose 50 %, but the new min is below the
		// old max × 1.1.
		{"noise guard, overlap", ranged("ns", 5, 90, 100, 140), ranged("ns", 5, 120, 150, 160), CompareOptions{}, VerdictSame, false, true, false},
		{"noise guard, just apart", ranged("ns", 5, 90, 100, 110), ranged("ns", 5, 121.01, 150, 160), CompareOptions{}, VerdictWorse, true, false, false},
		{"noise guard, just not apart", ranged("ns", 5, 90, 100, 110), ranged("ns", 5, 121, 150, 160), CompareOptions{}, VerdictSame, false, true, false},
		{"noise guard on a fall", ranged("ns", 5, 130, 150, 160), ranged("ns", 5, 90, 100, 140), CompareOptions{}, VerdictSame, false, true, false},
		// Few samples: single draws vary 4× run to run, so only ×10 counts.
		{"single samples ×4", ranged("ns", 1, 100, 100, 100), ranged("ns", 1, 400, 400, 400), CompareOptions{}, VerdictSame, false, true, true},
		{"single samples ×11", ranged("ns", 1, 100, 100, 100), ranged("ns", 1, 1100, 1100, 1100), CompareOptions{}, VerdictWorse, true, false, true},
		{"single samples ÷11", ranged("ns", 1, 1100, 1100, 1100), ranged("ns", 1, 100, 100, 100), CompareOptions{}, VerdictBetter, true, false, true},
		{"few samples, own factor", ranged("ns", 1, 100, 100, 100), ranged("ns", 1, 400, 400, 400), CompareOptions{FewSamplesFactor: 3}, VerdictWorse, true, false, true},
		{"two samples are few", ranged("ns", 2, 90, 100, 110), ranged("ns", 2, 150, 160, 170), CompareOptions{}, VerdictSame, false, true, true},
		{"min samples lowered", ranged("ns", 2, 90, 100, 110), ranged("ns", 2, 150, 160, 170), CompareOptions{MinSamples: 2}, VerdictWorse, true, false, false},
		// Missing min/max (zero): no range to guard with, the threshold
		// alone decides.
		{"missing min/max", Measurement{Name: "m", Units: "ns", N: 5, Median: 100}, Measurement{Name: "m", Units: "ns", N: 5, Median: 150}, CompareOptions{}, VerdictWorse, true, false, false},
		{"missing min/max one side", Measurement{Experiment: "e", Name: "m", Units: "ns", N: 5, Median: 100}, ranged("ns", 5, 100, 150, 200), CompareOptions{}, VerdictWorse, true, false, false},
		{"missing n", Measurement{Name: "m", Units: "ns", Min: 90, Median: 100, Max: 110}, Measurement{Name: "m", Units: "ns", Min: 140, Median: 150, Max: 160}, CompareOptions{}, VerdictSame, false, true, true},
		// Rates: a fall is worse.
		{"rate falls", ranged("pages/s", 5, 9000, 10000, 11000), ranged("pages/s", 5, 5000, 6000, 7000), CompareOptions{}, VerdictWorse, true, false, false},
		{"rate rises", ranged("Minsn/s", 5, 90, 100, 110), ranged("Minsn/s", 5, 150, 160, 170), CompareOptions{}, VerdictBetter, true, false, false},
		{"rate from the name", Measurement{Name: "overall pages/s", N: 5, Min: 9000, Median: 10000, Max: 11000}, Measurement{Name: "overall pages/s", N: 5, Min: 5000, Median: 6000, Max: 7000}, CompareOptions{}, VerdictWorse, true, false, false},
		{"ns/page rises", ranged("ns/page", 5, 9, 10, 11), ranged("ns/page", 5, 15, 16, 17), CompareOptions{}, VerdictWorse, true, false, false},
		{"unknown units", ranged("exits", 5, 9, 10, 11), ranged("exits", 5, 15, 16, 17), CompareOptions{}, VerdictNone, true, false, false},
		{"unknown units, same", ranged("exits", 5, 9, 10, 11), ranged("exits", 5, 9, 10, 11), CompareOptions{}, VerdictNone, false, false, false},
		{"zero baseline", ranged("ns", 5, 0, 0, 0), ranged("ns", 5, 1, 2, 3), CompareOptions{}, VerdictNone, false, false, false},
		{"both zero", ranged("ns", 5, 0, 0, 0), ranged("ns", 5, 0, 0, 0), CompareOptions{}, VerdictSame, false, false, false},
		{"negative baseline", ranged("ns", 5, -3, -2, -1), ranged("ns", 5, 1, 2, 3), CompareOptions{}, VerdictNone, false, false, false},
		{"NaN", ranged("ns", 5, 1, math.NaN(), 3), ranged("ns", 5, 1, 2, 3), CompareOptions{}, VerdictNone, false, false, false},
		{"drop to zero", ranged("ns", 5, 90, 100, 110), ranged("ns", 5, 0, 0, 0), CompareOptions{}, VerdictBetter, true, false, false},
	}
	for _, tt := range tests {
		cmp := Compare(perfRun(tt.base), perfRun(tt.cur), tt.opt)
		if len(cmp.Perf) != 1 {
			t.Errorf("%s: %d perf changes, want 1", tt.name, len(cmp.Perf))
			continue
		}
		p := cmp.Perf[0]
		if p.Verdict != tt.want || p.Significant != tt.significant || p.Noisy != tt.noisy || p.FewSamples != tt.fewSamples {
			t.Errorf("%s: verdict %q significant %v noisy %v few %v (ratio %g); want %q %v %v %v",
				tt.name, p.Verdict, p.Significant, p.Noisy, p.FewSamples, p.Ratio, tt.want, tt.significant, tt.noisy, tt.fewSamples)
		}
		if want := map[bool]int{true: 1}[tt.want == VerdictWorse]; cmp.Regressions() != want {
			t.Errorf("%s: Regressions() = %d, want %d", tt.name, cmp.Regressions(), want)
		}
		if !p.HasBase || !p.HasCur || p.Backend != "kvm" || p.CaseID != "perf/p" {
			t.Errorf("%s: keys %+v", tt.name, p)
		}
	}
}

func TestComparePerfNewRemovedAndOrder(t *testing.T) {
	m := func(exp, name string, med float64) Measurement {
		return Measurement{Experiment: exp, Name: name, Units: "ns", N: 5, Min: med * 0.95, Median: med, Max: med * 1.05}
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
	base := perfRun(ranged("ns", 5, 9, 10, 11), ranged("ns", 5, 90, 100, 110))
	cur := perfRun(ranged("ns", 5, 9, 10, 11), ranged("ns", 5, 900, 1000, 1100))
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
		{CompareOptions{}, CompareOptions{0.2, 3, 10}},
		{CompareOptions{Threshold: -1, MinSamples: -1, FewSamplesFactor: -1}, CompareOptions{0.2, 3, 10}},
		{CompareOptions{Threshold: math.NaN(), FewSamplesFactor: math.NaN()}, CompareOptions{0.2, 3, 10}},
		{CompareOptions{Threshold: math.Inf(1), FewSamplesFactor: math.Inf(1)}, CompareOptions{0.2, 3, 10}},
		{CompareOptions{Threshold: 0.5, MinSamples: 5, FewSamplesFactor: 4}, CompareOptions{0.5, 5, 4}},
		// A few-samples factor below the plain threshold would make few
		// samples more trusted than many.
		{CompareOptions{Threshold: 0.5, FewSamplesFactor: 1.2}, CompareOptions{0.5, 3, 10}},
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
			ranged("ns", 5, 90, 100, 110), {Experiment: "e", Name: "rate pages/s", N: 5, Min: 90, Median: 100, Max: 110},
			{Experiment: "e", Name: "noisy", Units: "ns", N: 1, Min: 100, Median: 100, Max: 100},
		}},
	}}
	cur := Run{Meta: Meta{Version: "0.2.0", Seed: 2}, Cases: []Case{
		{Backend: "kvm", Area: "smoke", ID: "smoke/fixed", State: StatePassed},
		{Backend: "kvm", Area: "smoke", ID: "smoke/breaks", State: StateFailed, Message: "Expected\n  <int>: 1\nto equal\n  <int>: 2"},
		{Backend: "kvm", Area: "perf", ID: "perf/p", State: StatePassed, Perf: []Measurement{
			ranged("ns", 5, 1900, 2000, 2100), {Experiment: "e", Name: "rate pages/s", N: 5, Min: 190, Median: 200, Max: 210},
			{Experiment: "e", Name: "noisy", Units: "ns", N: 1, Min: 300, Median: 300, Max: 300},
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
		"baseline 0.1.0 seed 1 → current 0.2.0 seed 2, threshold 20%",
		"cases: 1 regressions, 1 fixed, 0 lost coverage, 0 gained coverage, 0 deviation changes, 0 new, 0 removed, 1 unchanged",
		"perf: 1 worse, 1 better, 1 same (1 held back as noise), 0 unrated, 0 new, 0 removed",
		"  REGRESSION  kvm/smoke/breaks  passed → failed  Expected 1 to equal 2",
		"  fixed       kvm/smoke/fixed   failed → passed",
		"  WORSE   kvm/perf/p  m             100ns → 2µs  ×20  range 90ns–110ns → 1.9µs–2.1µs",
		"  better  kvm/perf/p  rate pages/s  100 → 200    ×2   range 90–110 → 190–210",
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
	if strings.Contains(out, "noisy") {
		t.Errorf("Text lists a measurement the noise guard held back:\n%s", out)
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
