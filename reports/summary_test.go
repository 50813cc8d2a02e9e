package reports

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega/gmeasure"
)

// normalRun looks like a real nightly run: two backends, several areas,
// a few failures, capability skips, deviations and perf numbers.
func normalRun() Run {
	var specs []types.SpecReport
	for _, backend := range []string{"kvm", "emu"} {
		for _, area := range []string{"smoke", "dirtylog", "pagefault", "debug", "memslot", "pmu"} {
			for i := 0; i < 15; i++ {
				state, msg := types.SpecStatePassed, ""
				switch {
				case backend == "kvm" && area == "pmu":
					state, msg = types.SpecStateSkipped, "kvm: PMU disabled (kvm.enable_pmu=N)"
				case backend == "kvm" && area == "debug" && i < 4:
					state, msg = types.SpecStateSkipped, "known deviation: host debug at CPL3 is not supported by PVM"
				case backend == "emu" && area == "memslot" && i == 3:
					state, msg = types.SpecStateFailed, "Expected\n    <int>: 1\nto equal\n    <int>: 2"
				}
				specs = append(specs, spec(backend, area, nil, fmt.Sprintf("case %02d [cpl3]", i), state, msg))
			}
		}
	}
	exp := gmeasure.NewExperiment("pio")
	exp.RecordDuration("exit round trip", 47*time.Microsecond)
	exp.RecordValue("exits", 1234.5, gmeasure.Units("exits/s"))
	specs = append(specs, spec("kvm", "perf", nil, "pio exits", types.SpecStatePassed, "", func(s *types.SpecReport) {
		s.ReportEntries = types.ReportEntries{{Name: "pio", Value: types.WrapEntryValue(exp)}}
	}))
	specs = append(specs, spec("kvm", "smoke", nil, "filtered", types.SpecStateSkipped, ""))
	r := report(specs...)
	r.SuiteSucceeded = false
	m := meta()
	m.ReportDir = "reports/out"
	return FromGinkgo(r, m)
}

func TestSummary(t *testing.T) {
	var buf bytes.Buffer
	normalRun().Summary(&buf, false)
	out := buf.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > 40 {
		t.Errorf("summary has %d lines, want at most 40:\n%s", len(lines), out)
	}
	for _, want := range []string{
		"kvmspec 0.1.0  backends kvm,emu  seed 42  profile pvm",
		"host: 6.18.44, /dev/kvm ok",
		"  kvm/smoke        15     0     0     0   300ms",
		"  kvm/pmu           0     0    15     0   300ms",
		"  kvm/debug        11     0     0     4   300ms",
		"failed (1):",
		"emu/memslot/case 03 [cpl3]: Expected 1 to equal 2  (suites/memslot/x.go:12)",
		"skipped (19):",
		"15× kvm: PMU disabled (kvm.enable_pmu=N)",
		"4× kvm: known deviation: host debug at CPL3",
		"kvm/perf/pio exits  exit round trip  47µs",
		"exits            1234 exits/s",
		"reports: reports/out/junit.xml  reports/out/report.ktap  reports/out/report.json",
		"FAIL: 161 passed, 1 failed, 19 skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(lines[len(lines)-1], "FAIL: ") {
		t.Errorf("last line is not the verdict: %q", lines[len(lines)-1])
	}
	t.Logf("\n%s", out)
}

func TestSummaryLimits(t *testing.T) {
	var specs []types.SpecReport
	for i := 0; i < 30; i++ {
		specs = append(specs, spec("kvm", "smoke", nil, fmt.Sprintf("f%02d", i), types.SpecStateFailed, "boom"))
		specs = append(specs, spec("kvm", "smoke", nil, fmt.Sprintf("s%02d", i), types.SpecStateSkipped, fmt.Sprintf("reason %d", i)))
	}
	r := report(specs...)
	r.SuiteSucceeded = false
	run := FromGinkgo(r, meta())
	var short, long bytes.Buffer
	run.Summary(&short, false)
	run.Summary(&long, true)
	if n := strings.Count(short.String(), "\n"); n > 40 {
		t.Errorf("short summary %d lines:\n%s", n, short.String())
	}
	for _, want := range []string{"… and 20 more (see the reports)", "… and 24 more reasons"} {
		if !strings.Contains(short.String(), want) {
			t.Errorf("short summary lacks %q", want)
		}
	}
	if !strings.Contains(long.String(), "kvm/smoke/f29") || !strings.Contains(long.String(), "reason 29") || !strings.Contains(long.String(), "\n    at suites/smoke/x.go:12") {
		t.Errorf("verbose summary lacks the tail or the failure text:\n%s", long.String())
	}
}

func TestVerdict(t *testing.T) {
	pass := spec("kvm", "smoke", nil, "a", types.SpecStatePassed, "")
	tests := []struct {
		name   string
		run    Run
		detail string // prefix of the detail line
		ci     string // the last line, exactly
	}{
		{"pass", FromGinkgo(report(pass), meta()), "1 specs, 0 known deviations, 1m0s", "PASS: 1 passed, 0 failed, 0 skipped"},
		{"nothing", FromGinkgo(report(spec("kvm", "smoke", nil, "a", types.SpecStateSkipped, "")), meta()), "0 specs, 0 known deviations, 1 filtered out", "EMPTY: 0 passed, 0 failed, 0 skipped"},
		{"duplicates", FromGinkgo(report(pass, pass), meta()), "2 specs, 0 known deviations, 1m0s; report problems:", "FAIL: 2 passed, 0 failed, 0 skipped"},
		{"all skipped", FromGinkgo(report(spec("kvm", "smoke", nil, "a", types.SpecStateSkipped, "no pmu")), meta()), "1 specs, 0 known deviations", "SKIPPED: 0 passed, 0 failed, 1 skipped"},
		{"failed", FromGinkgo(report(spec("kvm", "smoke", nil, "a", types.SpecStatePanicked, "x")), meta()), "1 specs, 0 known deviations", "FAIL: 0 passed, 1 failed, 0 skipped"},
	}
	for _, tt := range tests {
		lines := strings.Split(tt.run.verdict(), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], tt.detail) || lines[1] != tt.ci {
			t.Errorf("%s: verdict %q, want %q… then %q", tt.name, lines, tt.detail, tt.ci)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tt := range []struct {
		v     float64
		units string
		want  string
	}{
		{47000, "ns", "47µs"},
		{1234567, "ns", "1.235ms"},
		{1.5e9, "ns", "1.5s"},
		{12, "ns", "12ns"},
		{1234.5, "exits/s", "1234 exits/s"},
		{0.000123, "", "0.000123"},
	} {
		if got := formatValue(tt.v, tt.units); got != tt.want {
			t.Errorf("formatValue(%v, %q) = %q, want %q", tt.v, tt.units, got, tt.want)
		}
	}
}
