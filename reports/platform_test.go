package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/kvmspec/kvmspec/harness/host"
)

// TestOnPlatform: a run of another platform keeps its testcase names and
// IDs, takes backends of its own everywhere a backend is named (cases,
// labels, meta, caps, JUnit testsuites, KTAP), and leaves the run it was
// given unchanged.
func TestOnPlatform(t *testing.T) {
	m := meta()
	m.Caps = map[string][]CapLine{"kvm": {{Name: "pmu", Supported: false, Detail: "x86-64 only so far"}}, "emu": {{Name: "pmu", Supported: true}}}
	r := FromGinkgo(report(
		spec("kvm", "smoke", nil, "pio out [cpl0]", types.SpecStateSkipped, "kvm: unavailable"),
		spec("emu", "smoke", nil, "pio out [cpl0]", types.SpecStatePassed, ""),
	), m)
	orig := r.Cases[0].Labels[0]
	a := r.OnPlatform("arm64")

	if got := strings.Join(a.Meta.Backends, ","); got != "kvm-arm64,emu-arm64" {
		t.Errorf("backends %s", got)
	}
	if len(a.Meta.Caps["kvm-arm64"]) != 1 || len(a.Meta.Caps["emu-arm64"]) != 1 || len(a.Meta.Caps) != 2 {
		t.Errorf("caps %v", a.Meta.Caps)
	}
	if len(a.Cases) != len(r.Cases) {
		t.Fatalf("%d cases, want %d", len(a.Cases), len(r.Cases))
	}
	for i, c := range a.Cases {
		o := r.Cases[i]
		if c.ID != o.ID || c.Name != o.Name || c.State != o.State || c.Message != o.Message {
			t.Errorf("case %d changed beyond its backend: %+v -> %+v", i, o, c)
		}
		if o.Backend == "" {
			if c.Backend != "" {
				t.Errorf("suite case %s got backend %q", c.ID, c.Backend)
			}
			continue
		}
		if c.Backend != o.Backend+"-arm64" {
			t.Errorf("case %s: backend %q, want %q", c.ID, c.Backend, o.Backend+"-arm64")
		}
		if !slices.Contains(c.Labels, "backend:"+o.Backend+"-arm64") || slices.Contains(c.Labels, "backend:"+o.Backend) {
			t.Errorf("case %s: labels %v", c.ID, c.Labels)
		}
	}
	if r.Cases[0].Labels[0] != orig || r.Meta.Backends[0] != "kvm" || r.Meta.Caps["kvm"] == nil {
		t.Error("OnPlatform changed the run it was given")
	}

	var j, k bytes.Buffer
	if err := a.WriteJUnit(&j); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`name="kvm-arm64/smoke"`, `name="emu-arm64/smoke"`} {
		if !strings.Contains(j.String(), want) {
			t.Errorf("junit lacks %s", want)
		}
	}
	if strings.Contains(j.String(), `name="kvm/smoke"`) {
		t.Error("junit still has the x86 name kvm/smoke")
	}
	if err := a.WriteKTAP(&k); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(k.String(), "kvm-arm64") {
		t.Errorf("ktap does not name kvm-arm64:\n%s", k.String())
	}
	if err := a.Validate(); err != nil {
		t.Errorf("renamed run does not validate: %v", err)
	}
}

// x86Run and arm64Run are one run of each platform, as make test's two
// stages write them: the arm64 one renamed by OnPlatform, on a host whose
// uname says aarch64.
func x86Run(states ...types.SpecState) Run {
	if len(states) == 0 {
		states = []types.SpecState{types.SpecStatePassed, types.SpecStateSkipped}
	}
	var specs []types.SpecReport
	for i, s := range states {
		msg := ""
		if s == types.SpecStateSkipped {
			msg = "kvm: unavailable"
		}
		specs = append(specs, spec("kvm", "smoke", nil, fmt.Sprintf("case %d", i), s, msg), spec("emu", "smoke", nil, fmt.Sprintf("case %d", i), types.SpecStatePassed, ""))
	}
	specs = append(specs, spec("emu", "debug", nil, "filtered", types.SpecStateSkipped, ""))
	return FromGinkgo(report(specs...), meta())
}

func arm64Run(states ...types.SpecState) Run {
	m := meta()
	m.Profile, m.LabelFilter, m.Seed = "qemu-tcg-arm64", "smoke || arch:arm64", 7
	m.Host = []host.Property{{Name: "host.kernel", Value: "6.12.95+deb12-arm64"}, {Name: "host.arch", Value: "aarch64"}, {Name: "host.hostname", Value: "(none)"}, {Name: "host.dev_kvm", Value: "ok"}}
	m.Started, m.Finished = t0.Add(-time.Minute), t0.Add(3*time.Minute)
	var specs []types.SpecReport
	for i, s := range states {
		msg := ""
		if s != types.SpecStatePassed {
			msg = "arm64: " + string(s.String())
		}
		specs = append(specs, spec("kvm", "smoke", []string{"arm64"}, fmt.Sprintf("case %d", i), s, msg))
	}
	return FromGinkgo(report(specs...), m).OnPlatform("arm64")
}

func withArch(r Run, arch string) Run {
	r.Meta.Host = slices.DeleteFunc(slices.Clone(r.Meta.Host), func(p host.Property) bool { return p.Name == "host.arch" })
	r.Meta.Host = append(r.Meta.Host, host.Property{Name: "host.arch", Value: arch})
	return r
}

// x86OneCase is a run of one testcase on backend b of an x86 host.
func x86OneCase(b string, s types.SpecState, msg string) Run {
	m := meta()
	m.Backends, m.Caps = []string{b}, nil
	return withArch(FromGinkgo(report(spec(b, "smoke", nil, "a", s, msg)), m), "x86_64")
}

func platformRuns(runs ...Run) []PlatformRun {
	var out []PlatformRun
	for i, r := range runs {
		out = append(out, PlatformRun{Source: fmt.Sprintf("dir%d", i+1), Run: r})
	}
	return out
}

// verdictWord is the summary's CI word: PASS, FAIL, SKIPPED, EMPTY.
func verdictWord(r Run) string {
	v := r.verdict()
	word, _, _ := strings.Cut(v[strings.LastIndex(v, "\n")+1:], ":")
	return word
}

// TestMergePlatforms: runs of two platforms make one report whose counts
// are the sum of theirs, per architecture too; each backend's JUnit
// testsuites keep their platform's facts; verdicts survive (a failure
// anywhere fails, a platform that tested nothing fails, a skipped stage
// does not); what cannot be one report is refused with ErrPlatforms.
func TestMergePlatforms(t *testing.T) {
	x86 := withArch(x86Run(), "x86_64")
	passed := types.SpecStatePassed
	type want struct {
		err        string         // substring of the error; "" for none
		verdict    string         // PASS, FAIL, SKIPPED
		archs      map[string]int // total testcases per architecture
		platforms  []string       // names, in order
		incomplete bool
		caseLike   string // a case whose ID contains this must be there
	}
	for _, tc := range []struct {
		name   string
		runs   []Run
		absent []AbsentPlatform
		want   want
	}{
		{"two platforms", []Run{x86, arm64Run(passed, types.SpecStateSkipped)}, nil,
			want{verdict: "PASS", archs: map[string]int{"x86_64": 4, "arm64": 2}, platforms: []string{"x86_64", "arm64"}}},
		{"a failure on arm64 fails", []Run{x86, arm64Run(passed, types.SpecStateFailed)}, nil,
			want{verdict: "FAIL", archs: map[string]int{"x86_64": 4, "arm64": 2}, platforms: []string{"x86_64", "arm64"}}},
		{"a failure on x86 fails", []Run{withArch(x86Run(types.SpecStateFailed), "x86_64"), arm64Run(passed)}, nil,
			want{verdict: "FAIL", archs: map[string]int{"x86_64": 2, "arm64": 1}, platforms: []string{"x86_64", "arm64"}}},
		{"arm64 stage skipped", []Run{x86}, []AbsentPlatform{{Name: "arm64", Reason: "qemu-system-aarch64 not installed"}},
			want{verdict: "PASS", archs: map[string]int{"x86_64": 4, "arm64": 0}, platforms: []string{"x86_64", "arm64"}}},
		{"arm64 stage failed without a report", []Run{x86}, []AbsentPlatform{{Name: "arm64", Reason: "the guest sent no results", Failed: true}},
			want{verdict: "FAIL", archs: map[string]int{"x86_64": 4, "arm64": 1}, platforms: []string{"x86_64", "arm64"}, caseLike: "[platform arm64]"}},
		{"a platform that tested nothing fails", []Run{x86, arm64Run(types.SpecStateSkipped, types.SpecStateSkipped)}, nil,
			want{verdict: "FAIL", archs: map[string]int{"x86_64": 4, "arm64": 3}, platforms: []string{"x86_64", "arm64"}, caseLike: "[platform arm64: nothing tested]"}},
		{"a platform with no testcase fails", []Run{x86, arm64Run()}, nil,
			want{verdict: "FAIL", archs: map[string]int{"x86_64": 4, "arm64": 1}, platforms: []string{"x86_64", "arm64"}, caseLike: "[platform arm64: nothing tested]"}},
		{"all skipped fails", []Run{x86OneCase("kvm", types.SpecStateSkipped, "kvm: unavailable"), arm64Run(types.SpecStateSkipped)}, nil,
			want{verdict: "FAIL", archs: map[string]int{"x86_64": 2, "arm64": 2}, platforms: []string{"x86_64", "arm64"}}},
		{"an incomplete run", []Run{x86, incomplete(arm64Run(passed))}, nil,
			want{verdict: "FAIL", archs: map[string]int{"x86_64": 4, "arm64": 2}, platforms: []string{"x86_64", "arm64"}, incomplete: true, caseLike: "[run incomplete] [arm64]"}},
		{"merged shards are one run", []Run{x86, func() Run {
			r := arm64Run(passed, passed)
			r.Meta.Shard = &Shard{Total: 2, Merged: []string{"1/2", "2/2"}}
			return r
		}()}, nil, want{verdict: "PASS", archs: map[string]int{"x86_64": 4, "arm64": 2}, platforms: []string{"x86_64", "arm64"}}},
		{"two hosts of one architecture", []Run{x86, withArch(arm64Run(passed), "x86_64").OnPlatform("board")}, nil,
			want{verdict: "PASS", archs: map[string]int{"x86_64": 5}, platforms: []string{"x86_64", "board"}}},
		{"same architecture, no platform names", []Run{x86, x86OneCase("kvm2", passed, "")}, nil,
			want{verdict: "PASS", archs: map[string]int{"x86_64": 5}, platforms: []string{"x86_64", "x86_64-2"}}},
		{"no host facts", []Run{x86, func() Run { r := arm64Run(passed); r.Meta.Host, r.Meta.Platform = nil, ""; return r }()}, nil,
			want{verdict: "PASS", archs: map[string]int{"x86_64": 4, "unknown": 1}, platforms: []string{"x86_64", "report-2"}}},

		{"a backend in two runs, testcases colliding", []Run{x86, withArch(x86Run(), "x86_64")}, nil,
			want{err: `backend kvm is in report 1 (dir1) and report 2 (dir2): 2 testcases would have one name, e.g. "kvm/smoke/case 0"`}},
		{"a backend in two runs, no testcase in both", []Run{x86, x86OneCase("emu", passed, "")}, nil,
			want{err: "backend emu is in report 1 (dir1) and report 2 (dir2): their platform facts would be ambiguous"}},
		{"an unmerged shard", []Run{x86, func() Run { r := arm64Run(passed); r.Meta.Shard = &Shard{Index: 2, Total: 3}; return r }()}, nil,
			want{err: "report 2 (dir2) is shard 2/3 of a run: merge that run's shards first"}},
		{"no report", nil, []AbsentPlatform{{Name: "arm64", Reason: "skipped"}}, want{err: "no reports given"}},
		{"an absent platform named like a report", []Run{x86}, []AbsentPlatform{{Name: "x86_64", Reason: "no"}}, want{err: "platform x86_64 is named twice"}},
		{"an absent platform without a reason", []Run{x86}, []AbsentPlatform{{Name: "arm64"}}, want{err: "needs a name and a reason"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := platformRuns(tc.runs...)
			before, _ := json.Marshal(runs)
			m, err := MergePlatforms(runs, tc.absent)
			if after, _ := json.Marshal(runs); !bytes.Equal(before, after) {
				t.Error("MergePlatforms changed the runs it was given")
			}
			if tc.want.err != "" {
				if err == nil || !errors.Is(err, ErrPlatforms) || !strings.Contains(err.Error(), tc.want.err) {
					t.Fatalf("err %v, want ErrPlatforms with %q", err, tc.want.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			checkMergedPlatforms(t, m, tc.runs)
			if got := verdictWord(m); got != tc.want.verdict {
				t.Errorf("verdict %s, want %s:\n%s", got, tc.want.verdict, m.verdict())
			}
			if m.OK() != (tc.want.verdict == "PASS") {
				t.Errorf("OK() = %v with verdict %s", m.OK(), tc.want.verdict)
			}
			var names []string
			for _, p := range m.Meta.Platforms {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tc.want.platforms) {
				t.Errorf("platforms %v, want %v", names, tc.want.platforms)
			}
			archs := map[string]int{}
			for _, a := range m.ArchCounts() {
				archs[a.Arch] = a.Counts.Total
			}
			if !maps.Equal(archs, tc.want.archs) {
				t.Errorf("testcases per architecture %v, want %v", archs, tc.want.archs)
			}
			if (m.Incomplete != "") != tc.want.incomplete {
				t.Errorf("incomplete %q", m.Incomplete)
			}
			if tc.want.caseLike != "" && !slices.ContainsFunc(m.Cases, func(c Case) bool { return strings.Contains(c.ID, tc.want.caseLike) }) {
				t.Errorf("no case like %q", tc.want.caseLike)
			}
			for _, a := range tc.absent {
				var sum bytes.Buffer
				m.Summary(&sum, false)
				if !strings.Contains(sum.String(), a.Reason) {
					t.Errorf("summary does not say why %s has no run:\n%s", a.Name, sum.String())
				}
				if j := decodeJUnit(t, m); !slices.ContainsFunc(j.Suites[0].Properties, func(p junitProperty) bool {
					return p.Name == "kvmspec.platform."+a.Name+".status" && strings.Contains(p.Value, a.Reason)
				}) {
					t.Errorf("junit does not say why %s has no run", a.Name)
				}
			}
		})
	}
}

func incomplete(r Run) Run {
	r.Incomplete = "incomplete: the run started at … did not finish"
	r.Cases = append(r.Cases, Case{Area: SuiteArea, Name: "[run incomplete]", ID: SuiteArea + "/[run incomplete]", State: StateAborted, Message: r.Incomplete})
	return r
}

// checkMergedPlatforms checks what holds for every platforms merge: every
// input case is there once under its own backend and name, the counts add
// up in every format, each JUnit testsuite of a backend carries its
// platform's facts, and the report reads back as it was written.
func checkMergedPlatforms(t *testing.T, m Run, inputs []Run) {
	t.Helper()
	keys := map[string]bool{}
	for _, c := range m.Cases {
		k := CaseKey(c.Backend, c.ID)
		if keys[k] {
			t.Errorf("testcase %s twice", k)
		}
		keys[k] = true
	}
	for _, r := range inputs {
		for _, c := range r.Cases {
			if c.Backend != "" && !keys[CaseKey(c.Backend, c.ID)] {
				t.Errorf("testcase %s lost", CaseKey(c.Backend, c.ID))
			}
		}
	}
	if err := m.Validate(); err != nil {
		t.Errorf("merged run does not validate: %v", err)
	}
	// The platforms' counts add up to the run's, and every case has one.
	var sum Counts
	for _, p := range m.Meta.Platforms {
		sum.Total += p.Counts.Total
		sum.Passed += p.Counts.Passed
		sum.Failed += p.Counts.Failed
		sum.Skipped += p.Counts.Skipped
		sum.Deviations += p.Counts.Deviations
		sum.Filtered += p.Counts.Filtered
		if p.Meta != nil {
			n := 0
			for _, c := range m.Cases {
				if m.PlatformOf(c) == &m.Meta.Platforms[slices.IndexFunc(m.Meta.Platforms, func(q Platform) bool { return q.Name == p.Name })] {
					n++
				}
			}
			if n != p.Counts.Total {
				t.Errorf("platform %s: %d cases, counts say %d", p.Name, n, p.Counts.Total)
			}
		}
	}
	if c := m.Counts(); sum != c {
		t.Errorf("platform counts add up to %+v, the run has %+v", sum, c)
	}
	for _, c := range m.Cases {
		if m.PlatformOf(c) == nil {
			t.Errorf("case %s belongs to no platform", CaseKey(c.Backend, c.ID))
		}
	}

	// JUnit: counts match testcases, per suite and per architecture, and
	// a backend's testsuites say its platform's kernel and host profile.
	j := decodeJUnit(t, m)
	archTests := map[string]int{}
	tests := 0
	for _, s := range j.Suites {
		if s.Tests != len(s.Cases) {
			t.Errorf("testsuite %s: tests=%d with %d testcases", s.Name, s.Tests, len(s.Cases))
		}
		tests += s.Tests
		prop := map[string]string{}
		for _, p := range s.Properties {
			prop[p.Name] = p.Value
		}
		backend := prop["kvmspec.backend"]
		if backend == "" {
			continue
		}
		p := m.platformOfBackend(backend)
		if p == nil || p.Meta == nil {
			t.Fatalf("testsuite %s: backend %s of no platform", s.Name, backend)
		}
		if prop["kvmspec.platform"] != p.Name || prop["kvmspec.arch"] != p.Arch ||
			prop["host.kernel"] != hostFact(p.Meta.Host, "host.kernel") || prop["kvmspec.profile"] != p.Meta.Profile ||
			prop["kvmspec.label_filter"] != p.Meta.LabelFilter || s.Hostname != hostFact(p.Meta.Host, "host.hostname") {
			t.Errorf("testsuite %s: properties %v do not match platform %s", s.Name, prop, p.Name)
		}
		archTests[p.Arch] += s.Tests
		for _, a := range m.ArchCounts() {
			if prop["kvmspec.arch."+a.Arch] != a.Counts.String() {
				t.Errorf("testsuite %s: kvmspec.arch.%s=%q, want %q", s.Name, a.Arch, prop["kvmspec.arch."+a.Arch], a.Counts.String())
			}
		}
	}
	if tests != len(m.Cases) || j.Tests != tests {
		t.Errorf("junit: %d tests (top %d), %d cases", tests, j.Tests, len(m.Cases))
	}
	for _, a := range m.ArchCounts() {
		// Suite pseudo-cases sit in the "suite" testsuite, of no backend.
		pseudo := 0
		for _, c := range m.Cases {
			if c.Backend == "" && m.PlatformOf(c) != nil && m.PlatformOf(c).Arch == a.Arch {
				pseudo++
			}
		}
		if archTests[a.Arch]+pseudo != a.Counts.Total {
			t.Errorf("arch %s: %d testcases in its testsuites and %d suite cases, counts say %d", a.Arch, archTests[a.Arch], pseudo, a.Counts.Total)
		}
	}

	// JSON reads back with the platforms and their counts.
	var js bytes.Buffer
	if err := m.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&js)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(back.ArchCounts(), m.ArchCounts(), func(a, b ArchCount) bool { return a.Arch == b.Arch && a.Counts == b.Counts }) {
		t.Errorf("report.json reads back with architectures %+v, want %+v", back.ArchCounts(), m.ArchCounts())
	}
	for i, p := range back.Meta.Platforms {
		if p.Meta != nil && (p.Meta.Profile != m.Meta.Platforms[i].Meta.Profile || !slices.Equal(p.Meta.Host, m.Meta.Platforms[i].Meta.Host)) {
			t.Errorf("platform %s: meta does not read back", p.Name)
		}
	}

	// HTML and the summary show each architecture's counts; KTAP too.
	var page, text, ktap bytes.Buffer
	if err := m.WriteHTML(&page, nil); err != nil {
		t.Fatal(err)
	}
	m.Summary(&text, false)
	if err := m.WriteKTAP(&ktap); err != nil {
		t.Fatal(err)
	}
	for _, a := range m.ArchCounts() {
		c := a.Counts
		row := fmt.Sprintf(`<tr><td>%s</td><td class="num %s">%d</td><td class="num %s">%d</td>`, a.Arch, nonZero(c.Passed, "pass"), c.Passed, nonZero(c.Failed, "fail"), c.Failed)
		if !strings.Contains(page.String(), row) {
			t.Errorf("page lacks the row of %s: %s", a.Arch, row)
		}
		line := regexp.MustCompile(fmt.Sprintf(`(?m)^  %s +%d +%d +%d +%d +%d `, regexp.QuoteMeta(a.Arch), c.Passed, c.Failed, c.Skipped, c.Deviations, c.Total))
		if !line.MatchString(text.String()) {
			t.Errorf("summary lacks the line of %s:\n%s", a.Arch, text.String())
		}
		if !strings.Contains(ktap.String(), "# arch "+a.Arch+": "+c.String()+"\n") {
			t.Errorf("ktap lacks the totals of %s", a.Arch)
		}
	}
	for _, p := range m.Meta.Platforms {
		if !strings.Contains(text.String(), "platform "+p.Name+" ("+p.Arch+")") {
			t.Errorf("summary lacks platform %s:\n%s", p.Name, text.String())
		}
	}
}

// A platforms merge given again with a third platform is the merge of
// the three.
func TestMergePlatformsNested(t *testing.T) {
	x86, a64 := withArch(x86Run(), "x86_64"), arm64Run(types.SpecStatePassed)
	riscv := withArch(FromGinkgo(report(spec("kvm", "smoke", nil, "r", types.SpecStatePassed, "")), meta()), "riscv64").OnPlatform("riscv64")
	ab, err := MergePlatforms(platformRuns(x86, a64), nil)
	if err != nil {
		t.Fatal(err)
	}
	nested, err := MergePlatforms([]PlatformRun{{Source: "ab", Run: ab}, {Source: "c", Run: riscv}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	flat, err := MergePlatforms(platformRuns(x86, a64, riscv), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkMergedPlatforms(t, nested, []Run{x86, a64, riscv})
	key := func(r Run) []string {
		var k []string
		for _, c := range r.Cases {
			k = append(k, CaseKey(c.Backend, c.ID)+"="+string(c.State))
		}
		return k
	}
	if !slices.Equal(key(nested), key(flat)) || nested.Counts() != flat.Counts() || len(nested.Meta.Platforms) != 3 {
		t.Errorf("nested merge %v (%d platforms), flat %v", key(nested), len(nested.Meta.Platforms), key(flat))
	}
	if _, err := MergePlatforms([]PlatformRun{{Source: "ab", Run: ab}, {Source: "a", Run: a64}}, nil); err == nil || !strings.Contains(err.Error(), "backend kvm-arm64 is in report 1 (ab) and report 2 (a)") {
		t.Errorf("a platform given twice: %v", err)
	}
}

// The merged meta keeps what the platforms agree on and drops the rest.
func TestMergePlatformsMeta(t *testing.T) {
	x86, a64 := withArch(x86Run(), "x86_64"), arm64Run(types.SpecStatePassed)
	m, err := MergePlatforms(platformRuns(x86, a64), nil)
	if err != nil {
		t.Fatal(err)
	}
	mm := m.Meta
	if !slices.Equal(mm.Backends, []string{"kvm", "emu", "kvm-arm64", "emu-arm64"}) || mm.Seed != 42 || mm.Version != "0.1.0" {
		t.Errorf("backends %v seed %d version %q", mm.Backends, mm.Seed, mm.Version)
	}
	if mm.Profile != "" || mm.LabelFilter != "" || mm.Deviations != 0 {
		t.Errorf("differing settings kept: profile %q filter %q deviations %d", mm.Profile, mm.LabelFilter, mm.Deviations)
	}
	if !mm.Started.Equal(t0.Add(-time.Minute)) || !mm.Finished.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("started %v finished %v", mm.Started, mm.Finished)
	}
	if len(mm.Caps) != 4 || mm.Caps["kvm-arm64"] == nil || mm.Caps["kvm"] == nil {
		t.Errorf("caps %v", mm.Caps)
	}
	// host.dev_kvm is "ok" on both; the kernels differ.
	if !slices.Equal(mm.Host, []host.Property{{Name: "host.dev_kvm", Value: "ok"}}) {
		t.Errorf("common host facts %v", mm.Host)
	}
	if m.Filtered != x86.Filtered+a64.Filtered || m.Filtered == 0 {
		t.Errorf("filtered %d, want %d", m.Filtered, x86.Filtered+a64.Filtered)
	}
	if p := m.Meta.Platforms[1]; p.Arch != "arm64" || p.Meta.Platform != "arm64" || p.Meta.ReportDir != "" || p.Source != "dir2" {
		t.Errorf("arm64 platform %+v", p)
	}
}

// An architecture's note names its platforms and why any has no run,
// without repeating a lone platform's name.
func TestArchNote(t *testing.T) {
	for _, tc := range []struct {
		a    ArchCount
		want string
	}{
		{ArchCount{Platforms: []string{"arm64"}}, "arm64"},
		{ArchCount{Platforms: []string{"arm64"}, Absent: []string{"arm64: skipped: no QEMU"}}, "arm64 (skipped: no QEMU)"},
		{ArchCount{Platforms: []string{"x86_64", "board"}, Absent: []string{"board: skipped: offline"}}, "x86_64, board (board: skipped: offline)"},
	} {
		if got := tc.a.note(); got != tc.want {
			t.Errorf("note of %+v = %q, want %q", tc.a, got, tc.want)
		}
	}
}

// FuzzMergePlatforms: any two report.json documents either merge into a
// report whose platforms' counts add up to its own, with every case on a
// platform and every writer working, or are refused with ErrPlatforms;
// never a panic. report.json comes from other machines (an arm64 guest,
// a board), so it is input, not trusted state.
func FuzzMergePlatforms(f *testing.F) {
	enc := func(r Run) []byte {
		var b bytes.Buffer
		if err := r.WriteJSON(&b); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	// Small seeds: the fuzzer minimizes every input that finds new
	// coverage, which takes long for documents of many kilobytes.
	small := func(r Run) Run {
		r.Meta.Caps, r.Meta.Host = nil, slices.DeleteFunc(slices.Clone(r.Meta.Host), func(p host.Property) bool { return p.Name != "host.arch" })
		return r
	}
	x86, a64 := small(x86OneCase("emu", types.SpecStatePassed, "")), small(arm64Run(types.SpecStateFailed))
	both, err := MergePlatforms(platformRuns(x86, a64), []AbsentPlatform{{Name: "riscv64", Reason: "no board"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(enc(x86), enc(a64))
	f.Add(enc(both), enc(small(x86OneCase("kvm", types.SpecStateSkipped, "kvm: unavailable"))))
	f.Add(enc(x86), enc(incomplete(a64)))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ra, err1 := ReadJSON(bytes.NewReader(a))
		rb, err2 := ReadJSON(bytes.NewReader(b))
		if err1 != nil || err2 != nil {
			return
		}
		m, err := MergePlatforms(platformRuns(ra, rb), []AbsentPlatform{{Name: "absent-platform", Reason: "fuzz"}})
		if err != nil {
			if !errors.Is(err, ErrPlatforms) {
				t.Fatalf("error not ErrPlatforms: %v", err)
			}
			return
		}
		var sum Counts
		for _, p := range m.Meta.Platforms {
			sum.Total += p.Counts.Total
			sum.Passed += p.Counts.Passed
			sum.Failed += p.Counts.Failed
			sum.Skipped += p.Counts.Skipped
			sum.Deviations += p.Counts.Deviations
		}
		c := m.Counts()
		c.Filtered = 0
		if sum != c {
			t.Fatalf("platforms count %+v, the run %+v", sum, c)
		}
		for _, k := range m.Cases {
			if m.PlatformOf(k) == nil {
				t.Fatalf("case %s on no platform", CaseKey(k.Backend, k.ID))
			}
		}
		var w bytes.Buffer
		for _, write := range []func() error{
			func() error { return m.WriteJUnit(&w) }, func() error { return m.WriteKTAP(&w) },
			func() error { return m.WriteJSON(&w) }, func() error { return m.WriteHTML(&w, nil) },
		} {
			if err := write(); err != nil {
				t.Fatal(err)
			}
		}
		m.Summary(&w, true)
	})
}
