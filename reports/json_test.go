package reports

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestJSONRoundTrip(t *testing.T) {
	run := mixedRun()
	run.Meta.ReportDir = "reports/out"
	run.Meta.Strict = true
	run.Problems = []string{"a problem"}
	// Put a perf entry in, so numbers round-trip too.
	run.Cases[0].Perf = []Measurement{{Experiment: "e", Name: "n", Units: "ns", N: 3, Min: 1, Median: 2.5, Mean: 2, Max: 3, StdDev: 0.1}}
	var buf bytes.Buffer
	if err := run.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"schema_version": 2`, `"label_filter": "smoke"`, `"duration_ns": 20000000`, `"report_entries"`, `"failure_location"`, `"filtered": 4`, "boom <&>"} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	got, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, run) {
		t.Errorf("round trip changed the run\n got %+v\nwant %+v", got, run)
	}
}

func TestJSONEmptyRun(t *testing.T) {
	var buf bytes.Buffer
	if err := (Run{}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"cases": []`) || !strings.Contains(buf.String(), `"schema_version": 2`) {
		t.Errorf("empty run JSON:\n%s", buf.String())
	}
	if _, err := ReadJSON(&buf); err != nil {
		t.Errorf("empty run does not read back: %v", err)
	}
}

func TestReadJSONErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`{"cases": []}`, "no schema_version: not a kvmspec report"},
		{`{"schema_version": 99}`, "schema_version 99 is not supported"},
		{`{"schema_version": 0, "meta": {}, "cases": []}`, "schema_version 0 is not supported"},
		{`{"schema_version": 1, "results": [{"name": "x"}]}`, "not a kvmspec report"},
		{`{"schema_version": 1, "meta": {"version": "x"}, "cases": []}`, "meta has no started: not a kvmspec report"},
		{`{"schema_version": 1, "meta": [], "cases": []}`, "not a kvmspec report"},
		{`{"schema_version": "1"}`, "report json"},
		{`{"schema_version": 1, "meta": {"version": "", "started": "2026-01-01T00:00:00Z"}, "cases": [{"state": "exploded"}]}`, `cases[0].state: unknown state "exploded"`},
		{"{\"schema_version\": 1,\n\"cases\": [}", "line 2"},
		{``, "report json"},
		{`[]`, "report json"},
	}
	for _, tt := range tests {
		_, err := ReadJSON(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadJSON(%q) = %v, want error containing %q", tt.in, err, tt.want)
		}
	}
}

func FuzzReadJSON(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input byte by byte, and
	// a full report would keep it minimising instead of exploring.
	var buf bytes.Buffer
	small := Run{Meta: Meta{Version: "v", Backends: []string{"kvm"}, Caps: map[string][]CapLine{"kvm": {{Name: "pmu"}}}},
		Cases: []Case{{Backend: "kvm", Area: "smoke", Name: "a", ID: "smoke/a", State: StateFailed, Message: "m",
			Perf: []Measurement{{Name: "p", Units: "ns", N: 1, Median: 5}}, Entries: []Entry{{Name: "e", Value: "v"}}}}}
	if err := small.WriteJSON(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"schema_version": 1, "cases": [{"state": "passed", "duration_ns": -1}]}`))
	f.Add([]byte(`{"schema_version": 1, "meta": {"started": "2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"schema_version": 2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		run, err := ReadJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		// Whatever reads must write and summarise without panicking, and
		// read back the same.
		var out bytes.Buffer
		if err := run.WriteJSON(&out); err != nil {
			return // e.g. a time outside what JSON can hold
		}
		again, err := ReadJSON(&out)
		if err != nil {
			t.Fatalf("written report does not read back: %v\n%s", err, out.String())
		}
		var a, b bytes.Buffer
		run.WriteJSON(&a)
		again.WriteJSON(&b)
		if a.String() != b.String() {
			t.Fatalf("second round trip differs:\n%s\n%s", a.String(), b.String())
		}
		run.Summary(&bytes.Buffer{}, true)
		run.WriteJUnit(&bytes.Buffer{})
		run.Validate()
	})
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "nested")
	run := mixedRun()
	if err := WriteDir(dir, run); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, _ := e.Info()
		if info.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", e.Name(), info.Mode().Perm())
		}
	}
	if strings.Join(names, " ") != ".kvmspec.lock junit.xml report.json report.ktap" {
		t.Errorf("files %v: temporary files left or reports missing", names)
	}
	f, err := os.Open(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadJSON(f)
	if err != nil || len(got.Cases) != len(run.Cases) {
		t.Errorf("report.json reads back %d cases, %v", len(got.Cases), err)
	}
	// Writing again replaces the files.
	if err := WriteDir(dir, Run{}); err != nil {
		t.Fatal(err)
	}
}

func TestWriteDirErrorsNamePaths(t *testing.T) {
	root := t.TempDir()
	blocker := filepath.Join(root, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteDir(filepath.Join(blocker, "out"), Run{})
	if err == nil || !strings.Contains(err.Error(), blocker) {
		t.Errorf("WriteDir under a file: %v", err)
	}
	// A directory where the report should go cannot be replaced.
	dir := filepath.Join(root, "out")
	if err := os.MkdirAll(filepath.Join(dir, JUnitFile), 0o755); err != nil {
		t.Fatal(err)
	}
	err = WriteDir(dir, Run{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, JUnitFile)) {
		t.Errorf("WriteDir onto a directory: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A report of schema version 1 (before samples were kept) still reads,
// and its measurements compare as "not enough data", never worse.
func TestReadJSONVersion1(t *testing.T) {
	v1 := `{"schema_version": 1, "meta": {"version": "0.1.0", "backends": ["kvm"], "seed": 1, "started": "2026-11-22T10:00:00Z", "finished": "2026-11-22T10:01:00Z"},
	  "cases": [{"backend": "kvm", "area": "perf", "name": "p", "id": "perf/p", "state": "passed", "duration_ns": 5,
	    "perf": [{"experiment": "e", "name": "m", "units": "ns", "n": 1, "min": 30000, "median": 30000, "mean": 30000, "max": 30000, "stddev": 0}]}],
	  "filtered": 0}`
	old, err := ReadJSON(strings.NewReader(v1))
	if err != nil {
		t.Fatal(err)
	}
	cur := old
	cur.Cases = []Case{old.Cases[0]}
	cur.Cases[0].Perf = []Measurement{{Experiment: "e", Name: "m", Units: "ns", N: 1, Median: 5.5e6, Samples: []float64{5.5e6}}}
	cmp := Compare(old, cur, CompareOptions{})
	if cmp.Regressions() != 0 || cmp.Perf[0].Verdict != VerdictNotEnough {
		t.Errorf("v1 baseline: %d regressions, verdict %q", cmp.Regressions(), cmp.Perf[0].Verdict)
	}
}
