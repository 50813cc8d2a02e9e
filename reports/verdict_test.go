package reports

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// withDeviation records d on the spec as the framework does, optionally
// through a JSON round trip (a report from `ginkgo --json-report` or a
// parallel process, where the raw value is gone).
func withDeviation(d KnownDeviation, viaJSON bool) func(*types.SpecReport) {
	return func(s *types.SpecReport) {
		e := types.ReportEntry{Name: DeviationEntry, Value: types.WrapEntryValue(d)}
		if viaJSON {
			data, err := json.Marshal(e)
			if err != nil {
				panic(err)
			}
			e = types.ReportEntry{}
			if err := json.Unmarshal(data, &e); err != nil {
				panic(err)
			}
		}
		s.ReportEntries = append(s.ReportEntries, e)
	}
}

func TestDeviationVerdicts(t *testing.T) {
	runs := KnownDeviation{ID: "d1", Profile: "pvm", Reason: "int3 at CPL0 is an emulation failure", Run: true}
	notRun := KnownDeviation{ID: "d2", Profile: "pvm", Reason: "livelock", Run: false}
	panicked := func(s *types.SpecReport) { s.Failure.ForwardedPanic = "boom\nstack" }
	health := func(s *types.SpecReport) {
		s.AdditionalFailures = []types.AdditionalFailure{{State: types.SpecStateFailed,
			Failure: types.Failure{Message: HealthFailurePrefix + "new taint 0x200"}}}
	}
	tests := []struct {
		name    string
		state   types.SpecState
		msg     string
		opts    []func(*types.SpecReport)
		want    State
		wantMsg string
	}{
		{"failed", types.SpecStateFailed, "Expected\n    <int>: 1\nto equal\n    <int>: 2", []func(*types.SpecReport){withDeviation(runs, false)},
			StateDeviation, "known deviation: int3 at CPL0 is an emulation failure [d1] (observed: failed: Expected <int>: 1 to equal <int>: 2)"},
		{"failed, entry through JSON", types.SpecStateFailed, "x", []func(*types.SpecReport){withDeviation(runs, true)},
			StateDeviation, "known deviation: int3 at CPL0 is an emulation failure [d1] (observed: failed: x)"},
		{"timed out", types.SpecStateTimedout, "A spec timeout occurred", []func(*types.SpecReport){withDeviation(runs, false)},
			StateDeviation, "known deviation: int3 at CPL0 is an emulation failure [d1] (observed: timedout: A spec timeout occurred)"},
		{"panicked", types.SpecStatePanicked, "Test Panicked", []func(*types.SpecReport){withDeviation(runs, false), panicked},
			StateDeviation, "known deviation: int3 at CPL0 is an emulation failure [d1] (observed: panicked: boom stack)"},
		{"passed", types.SpecStatePassed, "", []func(*types.SpecReport){withDeviation(runs, false)},
			StateFailed, "unexpected pass: remove the deviation d1 from host profile pvm (int3 at CPL0 is an emulation failure)"},
		{"harmed the host", types.SpecStateFailed, "x", []func(*types.SpecReport){withDeviation(runs, false), health},
			StateFailed, "x"},
		{"skipped for a capability", types.SpecStateSkipped, "kvm: pmu unsupported", []func(*types.SpecReport){withDeviation(runs, false)},
			StateSkipped, "kvm: pmu unsupported"},
		{"interrupted", types.SpecStateInterrupted, "interrupted by user", []func(*types.SpecReport){withDeviation(runs, false)},
			StateInterrupted, "interrupted by user"},
		{"not run", types.SpecStateSkipped, notRun.NotRunMessage(), []func(*types.SpecReport){withDeviation(notRun, false)},
			StateDeviation, "known deviation (not run): livelock [d2]"},
		{"no deviation", types.SpecStateTimedout, "A spec timeout occurred", nil, StateTimedout, "A spec timeout occurred"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report(spec("kvm", "smoke", nil, "a", tt.state, tt.msg, tt.opts...))
			r.SuiteSucceeded = !tt.state.Is(types.SpecStateFailureStates)
			run := FromGinkgo(r, meta())
			if len(run.Cases) != 1 {
				t.Fatalf("cases %+v, want exactly the spec's (Ginkgo's failure of a declared spec is no suite failure)", run.Cases)
			}
			c := run.Cases[0]
			if c.State != tt.want || c.Message != tt.wantMsg {
				t.Errorf("got %s %q\nwant %s %q", c.State, c.Message, tt.want, tt.wantMsg)
			}
			for _, e := range c.Entries {
				if e.Name == DeviationEntry {
					t.Errorf("the deviation is listed as a report entry too: %q", e.Value)
				}
			}
			if len(tt.opts) > 0 && (c.Deviation == nil || c.Deviation.Profile != "pvm") {
				t.Errorf("Deviation = %+v, want the profile's", c.Deviation)
			}
			if c.State == StateFailed && c.Failure == "" {
				t.Error("a failed case without failure text")
			}
			counts := run.Counts()
			if (tt.want == StateDeviation) != (counts.Deviations == 1) || counts.Failed != btoi(tt.want.Failed()) {
				t.Errorf("counts %+v disagree with state %s", counts, c.State)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCondense(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct{ in, want string }{
		{"Expected\n    <*errors.errorString | 0xc000>: \n    boom\nto be nil", "Expected boom to be nil"},
		{"\n\n", ""},
		{long, long[:240] + "…"},
	}
	for _, tt := range tests {
		if got := condense(tt.in); got != tt.want {
			t.Errorf("condense(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCompareDeviations: a known deviation that observed something else
// this run (addresses, timings) is no change; another deviation is.
func TestCompareDeviations(t *testing.T) {
	d1 := &KnownDeviation{ID: "d1", Profile: "pvm", Reason: "r", Run: true}
	d2 := &KnownDeviation{ID: "d2", Profile: "pvm", Reason: "r", Run: true}
	one := func(d *KnownDeviation, msg string) Run {
		return Run{Meta: Meta{Backends: []string{"kvm"}}, Cases: []Case{{Backend: "kvm", Area: "smoke", Name: "a", ID: "smoke/a",
			State: StateDeviation, Message: msg, Deviation: d}}}
	}
	tests := []struct {
		name      string
		base, cur Run
		changed   bool
	}{
		{"same deviation, new observation", one(d1, "known deviation: r [d1] (observed: failed: 0x1)"), one(d1, "known deviation: r [d1] (observed: failed: 0x2)"), false},
		{"another deviation", one(d1, "m"), one(d2, "m"), true},
		{"older reports compare messages", one(nil, "known deviation: a"), one(nil, "known deviation: b"), true},
	}
	for _, tt := range tests {
		c := Compare(tt.base, tt.cur, CompareOptions{})
		if got := len(c.Cases) > 0; got != tt.changed {
			t.Errorf("%s: changes %+v, want changed=%v", tt.name, c.Cases, tt.changed)
		}
	}
}
