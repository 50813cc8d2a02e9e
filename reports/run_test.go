package reports

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega/gmeasure"

	"github.com/kvmspec/kvmspec/harness/host"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// spec builds the SpecReport of It(it) inside Describe(backend) >
// Describe(area) > Describe(containers...), labelled as the suites label.
func spec(backend, area string, containers []string, it string, state types.SpecState, msg string, opts ...func(*types.SpecReport)) types.SpecReport {
	s := types.SpecReport{
		ContainerHierarchyTexts:  append([]string{backend, area}, containers...),
		ContainerHierarchyLabels: [][]string{{"backend:" + backend}, {area}},
		LeafNodeType:             types.NodeTypeIt,
		LeafNodeText:             it,
		LeafNodeLocation:         types.CodeLocation{FileName: "suites/" + area + "/x.go", LineNumber: 10},
		State:                    state,
		StartTime:                t0,
		EndTime:                  t0.Add(20 * time.Millisecond),
		RunTime:                  20 * time.Millisecond,
		Failure:                  types.Failure{Message: msg},
	}
	for range containers {
		s.ContainerHierarchyLabels = append(s.ContainerHierarchyLabels, nil)
	}
	if msg != "" && state != types.SpecStateSkipped {
		s.Failure.Location = types.CodeLocation{FileName: "suites/" + area + "/x.go", LineNumber: 12}
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func report(specs ...types.SpecReport) types.Report {
	return types.Report{
		SuiteDescription: "kvmspec",
		SuiteSucceeded:   true,
		StartTime:        t0,
		EndTime:          t0.Add(time.Minute),
		RunTime:          time.Minute,
		SpecReports:      specs,
	}
}

func meta() Meta {
	return Meta{
		Version: "0.1.0", Backends: []string{"kvm", "emu"}, Seed: 42, LabelFilter: "smoke", Profile: "pvm",
		Host: []host.Property{{Name: "host.kernel", Value: "6.18.44"}, {Name: "host.hostname", Value: "vm"}, {Name: "host.dev_kvm", Value: "ok"}},
		Caps: map[string][]CapLine{
			"kvm": {{Name: "pmu", Detail: "kvm.enable_pmu=N"}, {Name: "dirty-ring", Supported: true}},
			"emu": {{Name: "pmu", Supported: true, Detail: "v2, 4 counters"}},
		},
		Started: t0, Finished: t0.Add(time.Minute),
	}
}

func only(t *testing.T, run Run) Case {
	t.Helper()
	if len(run.Cases) != 1 {
		t.Fatalf("%d cases, want 1: %+v", len(run.Cases), run.Cases)
	}
	return run.Cases[0]
}

func TestStates(t *testing.T) {
	panicked := func(s *types.SpecReport) {
		s.Failure.ForwardedPanic = "runtime error: index out of range [3] with length 3"
		s.Failure.Location.FullStackTrace = "goroutine 7 [running]:\nsuites/smoke/x.go:12"
	}
	timedOut := func(s *types.SpecReport) {
		s.Failure.ProgressReport = types.ProgressReport{
			CurrentNodeType: types.NodeTypeIt, CurrentNodeText: "runs", CurrentNodeLocation: types.CodeLocation{FileName: "x.go", LineNumber: 1},
			CurrentStepText: "KVM_RUN", CurrentStepLocation: types.CodeLocation{FileName: "x.go", LineNumber: 5},
			Goroutines: []types.Goroutine{{ID: 9, State: "syscall", IsSpecGoroutine: true, Stack: []types.FunctionCall{
				{Function: "kvm.(*vcpu).run", Filename: "harness/kvm/vcpu.go", Line: 77, Highlight: true},
			}}},
		}
		s.SpecEvents = []types.SpecEvent{{SpecEventType: types.SpecEventByStart, Message: "KVM_RUN", CodeLocation: types.CodeLocation{FileName: "x.go", LineNumber: 5}}}
		s.Failure.AdditionalFailure = &types.AdditionalFailure{State: types.SpecStateFailed, Failure: types.Failure{Message: "cleanup failed"}}
	}
	inAfterEach := func(s *types.SpecReport) {
		s.Failure.FailureNodeContext = types.FailureNodeInContainer
		s.Failure.FailureNodeType = types.NodeTypeAfterEach
		s.Failure.FailureNodeLocation = types.CodeLocation{FileName: "suites/smoke/setup.go", LineNumber: 3}
	}
	tests := []struct {
		name     string
		state    types.SpecState
		msg      string
		opt      func(*types.SpecReport)
		want     State
		junit    string   // the JUnit child element, "" for none
		failText []string // substrings of Case.Failure
	}{
		{"passed", types.SpecStatePassed, "", nil, StatePassed, "", nil},
		{"failed", types.SpecStateFailed, "Expected\n    <int>: 1\nto equal\n    <int>: 2", nil, StateFailed, "failure",
			[]string{"Expected", "at suites/smoke/x.go:12"}},
		{"failed in AfterEach", types.SpecStateFailed, "teardown broke", inAfterEach, StateFailed, "failure",
			[]string{"in AfterEach at suites/smoke/setup.go:3"}},
		{"timedout", types.SpecStateTimedout, "A spec timeout occurred", timedOut, StateTimedout, "failure",
			[]string{`stuck in It "runs" at x.go:1`, `during step "KVM_RUN" at x.go:5`, "goroutine 9 [syscall]", "> kvm.(*vcpu).run", "harness/kvm/vcpu.go:77", "then failed: cleanup failed", "STEP: KVM_RUN (x.go:5)"}},
		{"panicked", types.SpecStatePanicked, "Test Panicked", panicked, StatePanicked, "error",
			[]string{"panic: runtime error: index out of range", "goroutine 7 [running]"}},
		{"interrupted", types.SpecStateInterrupted, "Interrupted by User", nil, StateInterrupted, "error", nil},
		{"aborted", types.SpecStateAborted, "host lost /dev/kvm", nil, StateAborted, "failure", nil},
		{"skipped", types.SpecStateSkipped, "kvm: PMU disabled (kvm.enable_pmu=N)", nil, StateSkipped, "skipped", nil},
		{"deviation", types.SpecStateSkipped, "known deviation: int3 at CPL0 exits with an emulation failure", nil, StateDeviation, "skipped", nil},
		{"deviation not run", types.SpecStateSkipped, "known deviation (not run): livelock", nil, StateDeviation, "skipped", nil},
		{"pending", types.SpecStatePending, "", nil, StateSkipped, "skipped", nil},
		{"invalid state fails", types.SpecStateInvalid, "", nil, StateFailed, "failure", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []func(*types.SpecReport)
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			run := FromGinkgo(report(spec("kvm", "smoke", nil, "pio out [cpl3]", tt.state, tt.msg, opts...)), meta())
			c := only(t, run)
			if c.State != tt.want {
				t.Errorf("state %s, want %s", c.State, tt.want)
			}
			if tt.msg != "" && c.Message != tt.msg {
				t.Errorf("message %q, want %q", c.Message, tt.msg)
			}
			if tt.state == types.SpecStatePending && c.Message != "pending" {
				t.Errorf("pending message %q", c.Message)
			}
			for _, w := range tt.failText {
				if !strings.Contains(c.Failure, w) {
					t.Errorf("failure text lacks %q:\n%s", w, c.Failure)
				}
			}
			if c.State.Failed() && tt.msg != "" && c.FailureLocation != "suites/smoke/x.go:12" {
				t.Errorf("failure location %q", c.FailureLocation)
			}
			if !c.State.Failed() && (c.Failure != "" || c.FailureLocation != "") {
				t.Errorf("non-failure has failure text %q at %q", c.Failure, c.FailureLocation)
			}
			doc := decodeJUnit(t, run)
			jc := doc.Suites[0].Cases[0]
			got := ""
			switch {
			case jc.Failure != nil:
				got = "failure"
				if jc.Failure.Type != string(c.State) || jc.Failure.Message != oneLine(c.Message) {
					t.Errorf("failure type %q message %q", jc.Failure.Type, jc.Failure.Message)
				}
			case jc.Error != nil:
				got = "error"
				if jc.Error.Type != string(c.State) {
					t.Errorf("error type %q", jc.Error.Type)
				}
			case jc.Skipped != nil:
				got = "skipped"
				if jc.Skipped.Message != c.Message {
					t.Errorf("skipped message %q, want %q", jc.Skipped.Message, c.Message)
				}
			}
			if got != tt.junit {
				t.Errorf("JUnit element %q, want %q", got, tt.junit)
			}
		})
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name       string
		s          types.SpecReport
		backend    string
		area, id   string
		wantLabels int
	}{
		{"flat", spec("kvm", "smoke", nil, "pio out [cpl3]", types.SpecStatePassed, ""), "kvm", "smoke", "smoke/pio out [cpl3]", 2},
		{"nested", spec("emu", "smoke", []string{"exceptions"}, "#UD [cpl0]", types.SpecStatePassed, ""), "emu", "smoke", "smoke/exceptions / #UD [cpl0]", 2},
		{"deep", spec("kvm", "dirtylog", []string{"ring", "full"}, "at size-64", types.SpecStatePassed, ""), "kvm", "dirtylog", "dirtylog/ring / full / at size-64", 2},
		{"area label wins over text", spec("kvm", "Smoke tests", nil, "x", types.SpecStatePassed, "", func(s *types.SpecReport) {
			s.ContainerHierarchyLabels[1] = []string{"smoke", "kind:conformance"}
		}), "kvm", "smoke", "smoke/x", 3},
		{"no labels: texts", spec("kvm", "memslot", nil, "x", types.SpecStatePassed, "", func(s *types.SpecReport) {
			s.ContainerHierarchyLabels = nil
		}), "kvm", "memslot", "memslot/x", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := only(t, FromGinkgo(report(tt.s), meta()))
			if c.Backend != tt.backend || c.Area != tt.area || c.ID != tt.id || c.Name != strings.TrimPrefix(tt.id, tt.area+"/") {
				t.Errorf("got backend %q area %q id %q name %q; want %q %q %q", c.Backend, c.Area, c.ID, c.Name, tt.backend, tt.area, tt.id)
			}
			if len(c.Labels) != tt.wantLabels {
				t.Errorf("labels %v", c.Labels)
			}
			if id := SpecID(tt.s); id != c.ID {
				t.Errorf("SpecID = %q, case ID %q", id, c.ID)
			}
		})
	}
}

func TestFilteredAndNotRun(t *testing.T) {
	selected := spec("kvm", "smoke", nil, "ran", types.SpecStatePassed, "")
	deselected := spec("kvm", "pmu", nil, "counts", types.SpecStateSkipped, "")
	unreached := spec("kvm", "smoke", nil, "later", types.SpecStateSkipped, "")

	// A normal run: specs skipped without a message are the filtered ones.
	run := FromGinkgo(report(selected, deselected, unreached), meta())
	if len(run.Cases) != 1 || run.Filtered != 2 || run.Counts().Filtered != 2 || run.Counts().Total != 1 {
		t.Fatalf("cases %d filtered %d, want 1 and 2", len(run.Cases), run.Filtered)
	}

	// An interrupted run: the spec the label filter selects but that never
	// ran is a skipped case saying why; the deselected one stays filtered.
	r := report(selected, deselected, unreached)
	r.SuiteConfig.LabelFilter = "smoke"
	r.SuiteSucceeded = false
	r.SpecialSuiteFailureReasons = []string{"Interrupted by User"}
	run = FromGinkgo(r, meta())
	if run.Filtered != 1 {
		t.Errorf("filtered %d, want 1", run.Filtered)
	}
	var later, suite *Case
	for i := range run.Cases {
		switch run.Cases[i].ID {
		case "smoke/later":
			later = &run.Cases[i]
		case "suite/[suite]":
			suite = &run.Cases[i]
		}
	}
	if later == nil || later.State != StateSkipped || later.Message != "not run: Interrupted by User" {
		t.Errorf("unreached spec: %+v", later)
	}
	if suite == nil || suite.State != StateInterrupted {
		t.Errorf("suite case: %+v", suite)
	}

	// Focus and skip regexes are re-applied too.
	r = report(selected, deselected, unreached, spec("kvm", "smoke", nil, "aborter", types.SpecStateAborted, "gone"))
	r.SuiteConfig.FocusStrings = []string{"later|aborter"}
	run = FromGinkgo(r, meta())
	if run.Filtered != 1 || len(run.Cases) != 3 {
		t.Errorf("focus: filtered %d cases %d, want 1 and 3: %+v", run.Filtered, len(run.Cases), run.Cases)
	}
	r.SuiteConfig.FocusStrings = nil
	r.SuiteConfig.SkipStrings = []string{"later"}
	run = FromGinkgo(r, meta())
	if run.Filtered != 1 || len(run.Cases) != 3 {
		t.Errorf("skip: filtered %d cases %d, want 1 and 3", run.Filtered, len(run.Cases))
	}

	// Fail-fast stops the run after the first failure.
	r = report(spec("kvm", "smoke", nil, "fails", types.SpecStateFailed, "boom"), unreached)
	r.SuiteConfig.FailFast = true
	r.SuiteSucceeded = false
	run = FromGinkgo(r, meta())
	if run.Filtered != 0 || len(run.Cases) != 2 || !strings.Contains(run.Cases[1].Message, "fail-fast") {
		t.Errorf("fail-fast: %+v", run.Cases)
	}
}

func TestSuiteLevel(t *testing.T) {
	it := spec("kvm", "smoke", nil, "x", types.SpecStatePassed, "")
	before := types.SpecReport{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStateFailed,
		LeafNodeLocation: types.CodeLocation{FileName: "suites/suite.go", LineNumber: 20},
		Failure:          types.Failure{Message: "open /dev/kvm: permission denied", Location: types.CodeLocation{FileName: "suites/suite.go", LineNumber: 22}}}
	after := types.SpecReport{LeafNodeType: types.NodeTypeAfterSuite, State: types.SpecStatePanicked, Failure: types.Failure{Message: "Test Panicked", ForwardedPanic: "nil map"}}
	passedAfter := types.SpecReport{LeafNodeType: types.NodeTypeAfterSuite, State: types.SpecStatePassed}
	skippedBefore := types.SpecReport{LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, State: types.SpecStateSkipped, Failure: types.Failure{Message: "no backend available"}}
	tests := []struct {
		name    string
		r       func() types.Report
		want    map[string]State // ID → state of the suite cases
		cases   int
		wantErr bool
	}{
		{"before suite failed", func() types.Report {
			r := report(before)
			r.SuiteSucceeded = false
			return r
		}, map[string]State{"suite/[suite setup]": StateFailed}, 1, true},
		{"after suite panicked", func() types.Report {
			r := report(it, after, passedAfter)
			r.SuiteSucceeded = false
			return r
		}, map[string]State{"suite/[suite teardown]": StatePanicked}, 2, true},
		{"special reasons", func() types.Report {
			r := report(it)
			r.SuiteSucceeded = false
			r.SpecialSuiteFailureReasons = []string{"Suite Timeout Elapsed", "Detected pending specs and --fail-on-pending is set"}
			return r
		}, map[string]State{"suite/[suite]": StateFailed}, 2, true},
		{"failed without a failing spec", func() types.Report {
			r := report(it)
			r.SuiteSucceeded = false
			return r
		}, map[string]State{"suite/[suite]": StateFailed}, 2, true},
		{"skipped in before suite", func() types.Report {
			r := report(skippedBefore, spec("kvm", "smoke", nil, "x", types.SpecStateSkipped, ""))
			r.SpecialSuiteFailureReasons = []string{skippedInBeforeSuite}
			return r
		}, map[string]State{"suite/[suite setup]": StateSkipped}, 2, false},
		{"all good", func() types.Report { return report(it, passedAfter) }, map[string]State{}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := FromGinkgo(tt.r(), meta())
			got := map[string]State{}
			for _, c := range run.Cases {
				if c.Area == SuiteArea {
					got[c.ID] = c.State
					if c.Backend != "" {
						t.Errorf("suite case with backend %q", c.Backend)
					}
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("suite cases %v, want %v", got, tt.want)
			}
			for id, st := range tt.want {
				if got[id] != st {
					t.Errorf("%s: %s, want %s", id, got[id], st)
				}
			}
			if len(run.Cases) != tt.cases {
				t.Errorf("%d cases, want %d", len(run.Cases), tt.cases)
			}
			if failed := run.Counts().Failed > 0; failed != tt.wantErr || run.OK() == tt.wantErr {
				t.Errorf("failed=%v OK=%v, want failed=%v", failed, run.OK(), tt.wantErr)
			}
			// Suite cases come first and sit in their own testsuite.
			if len(tt.want) > 0 && run.Cases[0].Area != SuiteArea {
				t.Errorf("suite case not first: %+v", run.Cases[0])
			}
			doc := decodeJUnit(t, run)
			if len(tt.want) > 0 && (doc.Suites[0].Name != "suite" || doc.Suites[0].Cases[0].Classname != "kvmspec.suite") {
				t.Errorf("suite testsuite %q classname %q", doc.Suites[0].Name, doc.Suites[0].Cases[0].Classname)
			}
		})
	}
	// The skipped specs of a suite skipped in BeforeSuite say why.
	r := report(skippedBefore, spec("kvm", "smoke", nil, "x", types.SpecStateSkipped, ""))
	r.SpecialSuiteFailureReasons = []string{skippedInBeforeSuite}
	for _, c := range FromGinkgo(r, meta()).Cases {
		if c.ID == "smoke/x" && c.Message != "not run: "+skippedInBeforeSuite {
			t.Errorf("message %q", c.Message)
		}
	}
}

func TestPerfFromGmeasure(t *testing.T) {
	exp := gmeasure.NewExperiment("pio")
	for _, v := range []float64{3, 1, 2, 10} {
		exp.RecordValue("exits", v, gmeasure.Units("exits/ms"))
	}
	for _, d := range []time.Duration{13 * time.Microsecond, 11 * time.Microsecond, 20 * time.Microsecond} {
		exp.RecordDuration("round trip", d)
	}
	exp.RecordNote("a note carries no numbers")
	// In a parallel run an entry reaches ReportAfterSuite as JSON.
	wire, err := json.Marshal(types.WrapEntryValue(exp))
	if err != nil {
		t.Fatal(err)
	}
	var decoded types.ReportEntryValue
	if err := json.Unmarshal(wire, &decoded); err != nil {
		t.Fatal(err)
	}
	single := exp.Get("exits")

	tests := []struct {
		name  string
		value types.ReportEntryValue
		n     int
	}{
		{"pointer", types.WrapEntryValue(exp), 2},
		{"value", types.WrapEntryValue(*exp), 2},
		{"measurement", types.WrapEntryValue(single), 1},
		{"decoded from JSON", decoded, 2},
		{"not an experiment", types.WrapEntryValue(map[string]int{"a": 1}), 0},
		{"nil", types.WrapEntryValue(nil), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec("kvm", "perf", nil, "pio exit", types.SpecStatePassed, "", func(s *types.SpecReport) {
				s.ReportEntries = types.ReportEntries{{Name: "pio", Value: tt.value}}
			})
			c := only(t, FromGinkgo(report(s), meta()))
			if len(c.Perf) != tt.n {
				t.Fatalf("%d measurements, want %d: %+v", len(c.Perf), tt.n, c.Perf)
			}
			if len(c.Entries) != 1 || c.Entries[0].Name != "pio" || strings.Contains(c.Entries[0].Value, "\x1b") {
				t.Errorf("entries %q", c.Entries)
			}
			if tt.n == 0 {
				return
			}
			v := c.Perf[0]
			want := Measurement{Experiment: "pio", Name: "exits", Units: "exits/ms", N: 4, Min: 1, Median: 2.5, Mean: 4, Max: 10,
				Samples: []float64{3, 1, 2, 10}} // in the order measured
			want.StdDev = v.StdDev // checked below
			if !reflect.DeepEqual(v, want) {
				t.Errorf("value stats %+v, want %+v", v, want)
			}
			if v.StdDev < 3.53 || v.StdDev > 3.54 { // population stddev of 1,2,3,10
				t.Errorf("stddev %v", v.StdDev)
			}
			if tt.n < 2 {
				return
			}
			d := c.Perf[1]
			if d.Name != "round trip" || d.Units != "ns" || d.N != 3 || d.Median != 13000 || d.Min != 11000 || d.Max != 20000 ||
				len(d.Samples) != 3 || slices.Max(d.Samples) != 20000 {
				t.Errorf("duration stats %+v", d)
			}
		})
	}
}

func TestValidateDuplicates(t *testing.T) {
	a := spec("kvm", "smoke", nil, "same", types.SpecStatePassed, "")
	b := spec("kvm", "smoke", nil, "same", types.SpecStateFailed, "x")
	other := spec("emu", "smoke", nil, "same", types.SpecStatePassed, "")
	run := FromGinkgo(report(a, b, other), meta())
	if len(run.Problems) != 1 || !strings.Contains(run.Problems[0], `duplicate case ID "smoke/same" on backend "kvm"`) {
		t.Errorf("problems %q", run.Problems)
	}
	if err := run.Validate(); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("Validate = %v", err)
	}
	// Both cases are still written, so nothing is hidden.
	if doc := decodeJUnit(t, run); doc.Tests != 3 {
		t.Errorf("junit tests %d, want 3", doc.Tests)
	}
	if run := FromGinkgo(report(a, other), meta()); run.Validate() != nil || len(run.Problems) != 0 {
		t.Errorf("same ID on two backends flagged: %v", run.Problems)
	}
	bad := Run{Cases: []Case{{Backend: "kvm", ID: "smoke/x", State: "exploded"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), `unknown state "exploded"`) {
		t.Errorf("Validate unknown state = %v", err)
	}
}

func TestOrdering(t *testing.T) {
	run := FromGinkgo(report(
		spec("emu", "smoke", nil, "b", types.SpecStatePassed, ""),
		spec("kvm", "smoke", nil, "b", types.SpecStatePassed, ""),
		spec("kvm", "debug", nil, "z", types.SpecStatePassed, ""),
		spec("kvm", "debug", nil, "a", types.SpecStatePassed, ""),
		spec("other", "smoke", nil, "a", types.SpecStatePassed, ""),
	), meta()) // backends kvm, emu
	var got []string
	for _, c := range run.Cases {
		got = append(got, c.Backend+"/"+c.ID)
	}
	want := "kvm/debug/a kvm/debug/z kvm/smoke/b emu/smoke/b other/smoke/a"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"\x1b[38;5;9mred\x1b[0m": "red",
		"bad \xff byte":          "bad \uFFFD byte",
		"plain":                  "plain",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
