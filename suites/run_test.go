package suites

import (
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// Options.Validate refuses every bad input with one plain line.
func TestOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opt  Options
		want string
	}{
		{"label filter", Options{LabelFilter: "smoke && (("}, `bad --label-filter "smoke && ((": Mismatched '('`},
		{"focus", Options{Focus: []string{"("}}, `bad --focus "("`},
		{"skip", Options{Skip: []string{"a**"}}, `bad --skip "a**"`},
		{"focus file", Options{FocusFiles: []string{"x.go:y"}}, "bad --focus-file"},
		{"backend", Options{Backend: "emu,xen"}, `unknown backend "xen"`},
		{"timeout", Options{Timeout: -time.Second}, "bad --timeout"},
		{"flake attempts", Options{FlakeAttempts: -2}, "bad --flake-attempts"},
		{"ginkgo -p", Options{ParallelTotal: 3}, "parallel runs (ginkgo -p, --procs, 3 processes) are not supported"},
		{"param", Options{Params: map[string]string{"nope": "1"}}, `unknown --param "nope"`},
	}
	for _, c := range cases {
		err := c.opt.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
			continue
		}
		if _, ok := err.(*UsageError); !ok {
			t.Errorf("%s: %T is not a UsageError", c.name, err)
		}
		if strings.ContainsAny(err.Error(), "\x1b\n") {
			t.Errorf("%s: %q has escapes or several lines", c.name, err.Error())
		}
	}
	if err := (Options{Backend: "all", LabelFilter: "smoke", Focus: []string{"pio"}, Params: map[string]string{"dirtylog.mem": "8M"}}).Validate(); err != nil {
		t.Errorf("good options refused: %v", err)
	}
}

// Ginkgo's own settings reach RunSpecs (go test ./suites/ -ginkgo.*).
func TestGinkgoConfigPassesThrough(t *testing.T) {
	rc := types.NewDefaultReporterConfig()
	rc.JUnitReport = "ginkgo-junit.xml"
	sc, got := ginkgoConfig(Options{FailFast: true, FlakeAttempts: 3, FocusFiles: []string{"pio.go"}, SkipFiles: []string{"x.go"},
		Timeout: time.Minute, Reporter: &rc, Seed: 9})
	if !sc.FailFast || sc.FlakeAttempts != 3 || sc.FocusFiles[0] != "pio.go" || sc.SkipFiles[0] != "x.go" || sc.Timeout != time.Minute || sc.RandomSeed != 9 {
		t.Errorf("suite config %+v", sc)
	}
	if got.JUnitReport != "ginkgo-junit.xml" || !got.NoColor {
		t.Errorf("reporter config %+v", got)
	}
}
