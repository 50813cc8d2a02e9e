package reports

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// decodeJUnit writes the run's JUnit and decodes it back with
// encoding/xml, which fails on anything not well-formed.
func decodeJUnit(t *testing.T, run Run) junitSuites {
	t.Helper()
	var buf bytes.Buffer
	if err := run.WriteJUnit(&buf); err != nil {
		t.Fatalf("WriteJUnit: %v", err)
	}
	if !bytes.HasPrefix(buf.Bytes(), []byte(xml.Header)) {
		t.Errorf("no XML header")
	}
	var doc junitSuites
	dec := xml.NewDecoder(&buf)
	dec.Strict = true
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("JUnit is not well-formed XML: %v\n%s", err, buf.String())
	}
	return doc
}

// mixedRun has every state on two backends and two areas.
func mixedRun() Run {
	var specs []types.SpecReport
	states := []struct {
		s   types.SpecState
		msg string
	}{
		{types.SpecStatePassed, ""},
		{types.SpecStateFailed, "boom <&> \"quoted\"\nsecond line"},
		{types.SpecStateSkipped, "kvm: PMU disabled (kvm.enable_pmu=N)"},
		{types.SpecStateSkipped, "known deviation: int3 at CPL0"},
		{types.SpecStateTimedout, "A spec timeout occurred"},
		{types.SpecStatePanicked, "Test Panicked"},
		{types.SpecStateInterrupted, "Interrupted by User"},
		{types.SpecStateAborted, "aborted"},
		{types.SpecStateSkipped, ""}, // filtered: labelled "slow", deselected below
	}
	for _, backend := range []string{"kvm", "emu"} {
		for _, area := range []string{"smoke", "debug"} {
			for i, st := range states {
				specs = append(specs, spec(backend, area, []string{"group"}, "case "+strconv.Itoa(i)+" \x1b[1mbold\x1b[0m \x00nul", st.s, st.msg, func(s *types.SpecReport) {
					s.CapturedGinkgoWriterOutput = "guest: SYNC(1)\n"
					s.ReportEntries = types.ReportEntries{{Name: "host health", Value: types.WrapEntryValue("host kernel ok; taint 0→0")}}
					if st.s == types.SpecStateSkipped && st.msg == "" {
						s.LeafNodeLabels = []string{"slow"}
					}
				}))
			}
		}
	}
	r := report(specs...)
	r.SuiteSucceeded = false
	// The run aborted, so FromGinkgo re-applies the filter to tell
	// deselected specs from those never reached.
	r.SuiteConfig.LabelFilter = "!slow"
	return FromGinkgo(r, meta())
}

func TestJUnitCountsMatchCases(t *testing.T) {
	run := mixedRun()
	doc := decodeJUnit(t, run)
	if doc.Name != "kvmspec" || len(doc.Suites) != 4 {
		t.Fatalf("testsuites %q with %d suites", doc.Name, len(doc.Suites))
	}
	var tests, failures, errs, skipped int
	for _, s := range doc.Suites {
		var f, e, sk int
		for _, c := range s.Cases {
			n := 0
			if c.Failure != nil {
				f++
				n++
			}
			if c.Error != nil {
				e++
				n++
			}
			if c.Skipped != nil {
				sk++
				n++
			}
			if n > 1 {
				t.Errorf("%s: case %q has %d outcome elements", s.Name, c.Name, n)
			}
		}
		if s.Tests != len(s.Cases) || s.Failures != f || s.Errors != e || s.Skipped != sk {
			t.Errorf("%s: attributes tests=%d failures=%d errors=%d skipped=%d, children %d/%d/%d/%d",
				s.Name, s.Tests, s.Failures, s.Errors, s.Skipped, len(s.Cases), f, e, sk)
		}
		tests += s.Tests
		failures += s.Failures
		errs += s.Errors
		skipped += s.Skipped
	}
	if doc.Tests != tests || doc.Failures != failures || doc.Errors != errs || skipped == 0 {
		t.Errorf("testsuites attributes %d/%d/%d, sum of suites %d/%d/%d, %d skipped", doc.Tests, doc.Failures, doc.Errors, tests, failures, errs, skipped)
	}
	c := run.Counts()
	if doc.Tests != c.Total || doc.Failures+doc.Errors != c.Failed || skipped != c.Skipped+c.Deviations {
		t.Errorf("JUnit totals disagree with Counts %+v", c)
	}
	if c.Total != c.Passed+c.Failed+c.Skipped+c.Deviations || c.Filtered != 4 || c.Total != 32 {
		t.Errorf("inconsistent counts %+v", c)
	}
	// 8 selected specs per suite: 1 passed, 1 failed, 1 skipped, 1
	// deviation, timedout, panicked, interrupted, aborted.
	s := doc.Suites[0]
	if s.Tests != 8 || s.Failures != 3 || s.Errors != 2 || s.Skipped != 2 {
		t.Errorf("first suite %d/%d/%d/%d, want 8/3/2/2", s.Tests, s.Failures, s.Errors, s.Skipped)
	}
}

func TestJUnitContent(t *testing.T) {
	doc := decodeJUnit(t, mixedRun())
	s := doc.Suites[0]
	if s.Name != "kvm/debug" || s.Cases[0].Classname != "kvmspec.kvm.debug" || s.Hostname != "vm" || s.Timestamp != "2026-11-22T10:00:00" {
		t.Errorf("suite %q classname %q hostname %q timestamp %q", s.Name, s.Cases[0].Classname, s.Hostname, s.Timestamp)
	}
	props := map[string]string{}
	for _, p := range s.Properties {
		props[p.Name] = p.Value
	}
	for name, want := range map[string]string{
		"host.kernel":          "6.18.44",
		"cap.pmu":              "no: kvm.enable_pmu=N",
		"cap.dirty-ring":       "yes",
		"kvmspec.seed":         "42",
		"kvmspec.version":      "0.1.0",
		"kvmspec.label_filter": "smoke",
		"kvmspec.profile":      "pvm",
		"kvmspec.backend":      "kvm",
	} {
		if props[name] != want {
			t.Errorf("property %s = %q, want %q", name, props[name], want)
		}
	}
	var emu junitSuite
	for _, x := range doc.Suites {
		if x.Name == "emu/smoke" {
			emu = x
		}
	}
	for _, p := range emu.Properties {
		if p.Name == "cap.pmu" && p.Value != "yes: v2, 4 counters" {
			t.Errorf("emu cap.pmu = %q", p.Value)
		}
	}
	var failure, deviation *junitCase
	for i, c := range s.Cases {
		if c.Failure != nil && c.Failure.Type == "failed" {
			failure = &s.Cases[i]
		}
		if c.Skipped != nil && strings.HasPrefix(c.Skipped.Message, "known deviation: ") {
			deviation = &s.Cases[i]
		}
	}
	if failure == nil || deviation == nil {
		t.Fatal("failure or deviation case missing")
	}
	if failure.Failure.Message != `boom <&> "quoted" second line` || !strings.Contains(failure.Failure.Text, "second line") || !strings.Contains(failure.Failure.Text, "at suites/debug/x.go:12") {
		t.Errorf("failure %+v", failure.Failure)
	}
	if !strings.HasPrefix(failure.Name, "group / case 1 bold ") || strings.ContainsRune(failure.Name, 0x1b) {
		t.Errorf("case name %q: escapes must be gone", failure.Name)
	}
	if !strings.Contains(failure.SystemOut, "host health: host kernel ok") || !strings.Contains(failure.SystemOut, "output:\nguest: SYNC(1)") {
		t.Errorf("system-out %q", failure.SystemOut)
	}
	if failure.Time != "0.020" {
		t.Errorf("time %q", failure.Time)
	}
}

func TestJUnitEmptyRun(t *testing.T) {
	doc := decodeJUnit(t, FromGinkgo(report(), meta()))
	if doc.Tests != 0 || len(doc.Suites) != 0 || doc.Time != "60.000" {
		t.Errorf("empty run: %+v", doc)
	}
}

func TestCapLineString(t *testing.T) {
	for _, tt := range []struct {
		c    CapLine
		want string
	}{
		{CapLine{Name: "a", Supported: true}, "yes"},
		{CapLine{Name: "a", Supported: true, Detail: "4096 entries"}, "yes: 4096 entries"},
		{CapLine{Name: "a"}, "no"},
		{CapLine{Name: "a", Detail: "kvm.enable_pmu=N"}, "no: kvm.enable_pmu=N"},
	} {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.c, got, tt.want)
		}
	}
}
