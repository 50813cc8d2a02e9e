package reports

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
)

// OnPlatform returns r with every backend renamed to "<backend>-<platform>"
// ("kvm" → "kvm-arm64"): in the cases, their "backend:" labels, the
// backends selected and the capability map. It is how a run made on
// another platform (the arm64 stage of `make test`, which boots an arm64
// kernel under QEMU) is brought into this host's reports: its testcases
// keep their names and IDs, so host profiles and comparisons still match
// them, and sit beside this host's under backends of their own, so
// "kvm/smoke/…" of x86 and "kvm-arm64/smoke/…" never collide. Suite
// pseudo-cases (no backend) keep theirs. r itself is not changed.
func (r Run) OnPlatform(platform string) Run {
	rename := func(b string) string {
		if b == "" {
			return b
		}
		return b + "-" + platform
	}
	out := r
	out.Meta.Platform = platform
	out.Meta.Backends = nil
	for _, b := range r.Meta.Backends {
		out.Meta.Backends = append(out.Meta.Backends, rename(b))
	}
	if r.Meta.Caps != nil {
		out.Meta.Caps = make(map[string][]CapLine, len(r.Meta.Caps))
		for _, b := range slices.Sorted(maps.Keys(r.Meta.Caps)) {
			out.Meta.Caps[rename(b)] = r.Meta.Caps[b]
		}
	}
	out.Cases = make([]Case, len(r.Cases))
	for i, c := range r.Cases {
		if c.Backend != "" {
			c.Backend = rename(c.Backend)
			labels := make([]string, len(c.Labels))
			for j, l := range c.Labels {
				if b := taxonomy.BackendOf([]string{l}); b != "" {
					l = taxonomy.Backend(rename(b)).Label()[0]
				}
				labels[j] = l
			}
			if c.Labels != nil {
				c.Labels = labels
			}
		}
		out.Cases[i] = c
	}
	return out
}

// ErrPlatforms is wrapped by MergePlatforms' errors about the runs it is
// given (a backend in two of them, an unmerged shard, a platform named
// twice): bad usage, found before anything is written, not a failure.
var ErrPlatforms = errors.New("runs do not make one report")

// Platform is one run of a platforms merge (MergePlatforms): what it ran
// on, what it was asked, and what it found.
type Platform struct {
	// Name names the platform in the report, unique within it: the
	// suffix its backends were given (Meta.Platform: "arm64" for
	// kvm-arm64), else its architecture.
	Name string `json:"name"`
	// Arch is the architecture of the host the run ran on, from its
	// host.arch fact ("x86_64", "arm64"; uname's "aarch64" reads arm64).
	Arch string `json:"arch"`
	// Source is where the run was read (its report directory).
	Source string `json:"source,omitempty"`
	// Backends are the platform's backends, as its testcases name them.
	Backends []string `json:"backends,omitempty"`
	// Meta is the run's own meta: host facts (kernel, CPU, KVM
	// parameters), host profile and its declared deviations, settings,
	// seed and times. Nil for a platform without a run.
	Meta *Meta `json:"meta,omitempty"`
	// Filtered and Incomplete are the run's own.
	Filtered   int    `json:"filtered"`
	Incomplete string `json:"incomplete,omitempty"`
	// Skipped says why the platform has no run here (its stage could not
	// run on this machine); it does not fail the report.
	Skipped string `json:"skipped,omitempty"`
	// Failed says why the platform's stage failed without a report; a
	// failing suite pseudo-case stands for it.
	Failed string `json:"failed,omitempty"`
	// Counts are the platform's testcases, its suite pseudo-cases
	// included: the platforms' counts add up to the run's.
	Counts Counts `json:"counts"`
}

// PlatformRun is a run given to MergePlatforms, and where it was read.
type PlatformRun struct {
	Source string // for messages and Platform.Source, e.g. "reports/out/arm64"
	Run    Run
}

// AbsentPlatform is a platform whose stage brought no report: skipped
// (Reason says why; the report says so and does not fail), or, with
// Failed, failed (a failing pseudo-case says why).
type AbsentPlatform struct {
	Name, Reason string
	Failed       bool
}

// MergePlatforms combines runs made on different platforms (the x86 suites
// of `make test` and its arm64 stage; a board and a server) into one
// report: every run's testcases under their own backends, each platform's
// own facts in Meta.Platforms (and in the properties of its JUnit
// testsuites), and counts per platform and architecture.
//
// Testcases keep their backends, names and IDs, so they compare with
// earlier runs. A backend may belong to one run only: two runs with a
// backend of one name (two "emu" runs) are refused, since their
// testcases would collide or their platform facts be ambiguous. Shards
// (not yet merged) are refused; the merge of a run's shards, and a
// platforms merge given again, are fine. Suite pseudo-cases take their
// platform's name ("[suite setup] [arm64]").
//
// Verdicts survive: a failure in any run fails the merge; a run that did
// not finish makes it incomplete; a run that tested nothing (every
// testcase skipped, or none selected) gets a failing pseudo-case
// "[platform NAME: nothing tested]", as it would have failed alone. An
// absent platform that was skipped is recorded and does not fail.
//
// The merged Meta holds what the platforms have in common (version, label
// filter, host profile, parameters, host facts; "" where they differ), the
// seed of the first run, all backends in the order given, every backend's
// capabilities, the earliest start and the latest finish.
func MergePlatforms(runs []PlatformRun, absent []AbsentPlatform) (Run, error) {
	if len(runs) == 0 {
		return Run{}, fmt.Errorf("merge: %w: no reports given", ErrPlatforms)
	}
	out := Run{SchemaVersion: SchemaVersion}
	var metas []Meta
	var backends []string
	backendOf := map[string]int{} // backend → report (0-based)
	nameOf := map[string]int{}    // platform name → report
	var incomplete []string
	for i, in := range runs {
		r := in.Run
		if sh := r.Meta.Shard; sh != nil && sh.Index > 0 {
			return Run{}, fmt.Errorf("merge: %w: report %d (%s) is shard %s of a run: merge that run's shards first (kvmspec merge OUT DIR..., without --platforms) and give the merged directory", ErrPlatforms, i+1, in.Source, sh)
		}
		for _, b := range backendsOf(r) {
			if j, dup := backendOf[b]; dup {
				return Run{}, collision(runs, j, i, b)
			}
			backendOf[b] = i
		}
		plats, cases := platformsOf(in, i)
		for k := range plats {
			p := &plats[k]
			if len(r.Meta.Platforms) == 0 {
				// One run, one platform: a name of its own.
				base := p.Name
				for n := 2; nameTaken(nameOf, p.Name); n++ {
					p.Name = fmt.Sprintf("%s-%d", base, n)
				}
				cases = platformCases(p, r, cases)
			} else if j, dup := nameOf[p.Name]; dup {
				return Run{}, fmt.Errorf("merge: %w: platform %s is in report %d (%s) and report %d (%s)", ErrPlatforms, p.Name, j+1, runs[j].Source, i+1, in.Source)
			}
			nameOf[p.Name] = i
		}
		out.Meta.Platforms = append(out.Meta.Platforms, plats...)
		out.Cases = append(out.Cases, cases...)
		out.Filtered += r.Filtered
		if r.Incomplete != "" {
			if len(r.Meta.Platforms) == 0 {
				incomplete = append(incomplete, "platform "+plats[0].Name+": "+r.Incomplete)
			} else {
				incomplete = append(incomplete, r.Incomplete)
			}
		}
		metas = append(metas, r.Meta)
		backends = append(backends, backendsOf(r)...)
	}
	for _, a := range absent {
		switch {
		case a.Name == "" || a.Reason == "":
			return Run{}, fmt.Errorf("merge: %w: an absent platform needs a name and a reason (NAME=REASON), got %q=%q", ErrPlatforms, a.Name, a.Reason)
		case nameTaken(nameOf, a.Name):
			return Run{}, fmt.Errorf("merge: %w: platform %s is named twice (a report, or an absent platform given twice)", ErrPlatforms, a.Name)
		}
		nameOf[a.Name] = -1
		p := Platform{Name: a.Name, Arch: normArch(a.Name)}
		if a.Failed {
			p.Failed = a.Reason
			c := suiteCase("[platform "+a.Name+"]", StateFailed, "platform "+a.Name+": "+a.Reason)
			out.Cases = append(out.Cases, c)
		} else {
			p.Skipped = a.Reason
		}
		out.Meta.Platforms = append(out.Meta.Platforms, p)
	}
	out.Meta = commonMeta(metas, backends, out.Meta.Platforms)
	if err := out.countPlatforms(runs); err != nil {
		return Run{}, err
	}
	out.Incomplete = strings.Join(incomplete, "; ")
	sortCases(out.Cases, out.Meta.Backends)
	out.Problems = problems(out.Cases)
	return out, nil
}

// countPlatforms counts each platform's cases, so that the platforms'
// counts add up to the run's whatever a merged input claimed; a case of
// none of the platforms (an input's meta.platforms that do not cover its
// cases) is refused.
func (r Run) countPlatforms(runs []PlatformRun) error {
	for i := range r.Meta.Platforms {
		r.Meta.Platforms[i].Counts = Counts{Filtered: r.Meta.Platforms[i].Counts.Filtered}
	}
	for _, c := range r.Cases {
		p := r.PlatformOf(c)
		if p == nil {
			src := ""
			for i, in := range runs {
				if slices.ContainsFunc(in.Run.Cases, func(k Case) bool { return k.Backend == c.Backend && k.ID == c.ID }) {
					src = fmt.Sprintf(" of report %d (%s)", i+1, in.Source)
				}
			}
			return fmt.Errorf("merge: %w: testcase %s%s belongs to none of its report's platforms", ErrPlatforms, CaseKey(c.Backend, c.ID), src)
		}
		k := tally([]Case{c})
		p.Counts.Total += k.Total
		p.Counts.Passed += k.Passed
		p.Counts.Failed += k.Failed
		p.Counts.Skipped += k.Skipped
		p.Counts.Deviations += k.Deviations
	}
	return nil
}

// backendsOf is every backend a run names, in its meta or its cases.
func backendsOf(r Run) []string {
	var out []string
	for _, b := range r.Meta.Backends {
		if b != "" && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	for _, c := range r.Cases {
		if c.Backend != "" && !slices.Contains(out, c.Backend) {
			out = append(out, c.Backend)
		}
	}
	return out
}

// collision is the error for backend b in reports i and j (0-based, i < j):
// how many testcases collide, and one of them.
func collision(runs []PlatformRun, i, j int, b string) error {
	keys := map[string]bool{}
	for _, c := range runs[i].Run.Cases {
		if c.Backend == b {
			keys[c.ID] = true
		}
	}
	var both []string
	for _, c := range runs[j].Run.Cases {
		if c.Backend == b && keys[c.ID] {
			both = append(both, CaseKey(b, c.ID))
		}
	}
	sort.Strings(both)
	what := "their platform facts would be ambiguous"
	if len(both) > 0 {
		what = fmt.Sprintf("%d testcases would have one name, e.g. %q", len(both), both[0])
	}
	return fmt.Errorf("merge: %w: backend %s is in report %d (%s) and report %d (%s): %s; "+
		"the runs of different platforms need backends of their own names (make test-arm64 names its kvm-arm64 and emu-arm64)",
		ErrPlatforms, b, i+1, runs[i].Source, j+1, runs[j].Source, what)
}

// platformsOf returns the platforms of run i and its cases (copied): one
// platform for a plain run, its own platforms for a platforms merge.
func platformsOf(in PlatformRun, i int) ([]Platform, []Case) {
	r := in.Run
	cases := slices.Clone(r.Cases)
	if len(r.Meta.Platforms) > 0 {
		return slices.Clone(r.Meta.Platforms), cases
	}
	m := r.Meta
	m.Platforms = nil
	m.ReportDir = "" // Source says where it was read
	arch := normArch(hostFact(m.Host, "host.arch"))
	name := m.Platform
	if name == "" {
		name = arch
	}
	if arch == "" {
		arch = "unknown"
	}
	if name == "" {
		name = fmt.Sprintf("report-%d", i+1)
	}
	return []Platform{{
		Name: name, Arch: arch, Source: in.Source, Backends: backendsOf(r), Meta: &m,
		Filtered: r.Filtered, Incomplete: r.Incomplete,
	}}, cases
}

// platformCases names the run's suite pseudo-cases after p, adds the
// failing pseudo-case of a run that tested nothing, and counts p's cases.
func platformCases(p *Platform, r Run, cases []Case) []Case {
	for k := range cases {
		if cases[k].Backend == "" {
			cases[k].Name += " [" + p.Name + "]"
			cases[k].ID = cases[k].Area + "/" + cases[k].Name
		}
	}
	c := tally(cases)
	if r.Incomplete == "" && c.Failed == 0 && !slices.ContainsFunc(cases, Case.Checked) {
		why := fmt.Sprintf("all %d testcases were skipped: nothing was tested there", c.Total)
		if c.Total == 0 {
			why = fmt.Sprintf("no testcase: no spec matched its filters (%d deselected)", r.Filtered)
		}
		cases = append(cases, suiteCase("[platform "+p.Name+": nothing tested]", StateFailed, "platform "+p.Name+": "+why))
	}
	p.Counts.Filtered = r.Filtered // the cases are counted at the end (countPlatforms)
	return cases
}

func suiteCase(name string, s State, msg string) Case {
	return Case{Area: SuiteArea, Name: name, ID: SuiteArea + "/" + name, State: s, Message: msg, Failure: msg}
}

// commonMeta is the merged run's meta: what every run's meta agrees on.
func commonMeta(metas []Meta, backends []string, plats []Platform) Meta {
	first := metas[0]
	m := Meta{Seed: first.Seed, Strict: true, Backends: backends, Platforms: plats}
	same := func(get func(Meta) string) string {
		v := get(first)
		for _, x := range metas[1:] {
			if get(x) != v {
				return ""
			}
		}
		return v
	}
	var versions []string
	for _, x := range metas {
		if x.Version != "" && !slices.Contains(versions, x.Version) {
			versions = append(versions, x.Version)
		}
		m.Strict = m.Strict && x.Strict
		for b, caps := range x.Caps {
			if m.Caps == nil {
				m.Caps = map[string][]CapLine{}
			}
			m.Caps[b] = caps
		}
		if !x.Started.IsZero() && (m.Started.IsZero() || x.Started.Before(m.Started)) {
			m.Started = x.Started
		}
		if x.Finished.After(m.Finished) {
			m.Finished = x.Finished
		}
	}
	m.Version = strings.Join(versions, ", ")
	m.LabelFilter = same(func(x Meta) string { return x.LabelFilter })
	m.Focus = same(func(x Meta) string { return x.Focus })
	m.Skip = same(func(x Meta) string { return x.Skip })
	m.Profile = same(func(x Meta) string { return x.Profile })
	m.ProfileFile = same(func(x Meta) string { return x.ProfileFile })
	if m.Profile != "" && same(func(x Meta) string { return fmt.Sprint(x.Deviations) }) != "" {
		m.Deviations = first.Deviations
	}
	if slices.IndexFunc(metas, func(x Meta) bool { return !maps.Equal(x.Params, first.Params) }) < 0 {
		m.Params = maps.Clone(first.Params)
	}
	for _, p := range first.Host {
		if !slices.ContainsFunc(metas[1:], func(x Meta) bool { return hostFact(x.Host, p.Name) != p.Value }) {
			m.Host = append(m.Host, p)
		}
	}
	return m
}

func nameTaken(names map[string]int, name string) bool {
	_, ok := names[name]
	return ok
}

func hostFact(ps []host.Property, name string) string {
	for _, p := range ps {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// normArch names an architecture as the reports do: Go's arm64 for uname's
// aarch64, uname's x86_64 for Go's amd64.
func normArch(a string) string {
	switch a {
	case "aarch64", "arm64":
		return "arm64"
	case "amd64", "x86_64", "x86-64":
		return "x86_64"
	}
	return a
}

// PlatformOf returns the platform of a case of a platforms merge (by its
// backend; a suite pseudo-case by the platform its name ends with), nil
// for a run that is not one or a case of no platform.
func (r Run) PlatformOf(c Case) *Platform {
	for i := range r.Meta.Platforms {
		p := &r.Meta.Platforms[i]
		if c.Backend != "" && slices.Contains(p.Backends, c.Backend) {
			return p
		}
		if c.Backend == "" && (strings.HasSuffix(c.Name, " ["+p.Name+"]") || strings.HasPrefix(c.Name, "[platform "+p.Name+"]") || strings.HasPrefix(c.Name, "[platform "+p.Name+":")) {
			return p
		}
	}
	return nil
}

// platformOfBackend returns the platform of a backend, nil when the run
// is no platforms merge or the backend none of its platforms'.
func (r Run) platformOfBackend(backend string) *Platform {
	if backend == "" {
		return nil
	}
	for i := range r.Meta.Platforms {
		if slices.Contains(r.Meta.Platforms[i].Backends, backend) {
			return &r.Meta.Platforms[i]
		}
	}
	return nil
}

// ArchCount is what one architecture of a platforms merge ran.
type ArchCount struct {
	Arch      string
	Platforms []string // the platforms of this architecture, in merge order
	Counts    Counts   // their testcases
	Absent    []string // "arm64: skipped: reason" of platforms without a run
}

// ArchCounts sums the platforms' counts per architecture, in the order the
// architectures first appear; nil when the run is no platforms merge.
func (r Run) ArchCounts() []ArchCount {
	var out []ArchCount
	for _, p := range r.Meta.Platforms {
		i := slices.IndexFunc(out, func(a ArchCount) bool { return a.Arch == p.Arch })
		if i < 0 {
			out = append(out, ArchCount{Arch: p.Arch})
			i = len(out) - 1
		}
		a := &out[i]
		a.Platforms = append(a.Platforms, p.Name)
		a.Counts.Total += p.Counts.Total
		a.Counts.Passed += p.Counts.Passed
		a.Counts.Failed += p.Counts.Failed
		a.Counts.Skipped += p.Counts.Skipped
		a.Counts.Deviations += p.Counts.Deviations
		a.Counts.Filtered += p.Counts.Filtered
		if s := p.Status(); p.Skipped != "" || p.Failed != "" {
			a.Absent = append(a.Absent, p.Name+": "+s)
		}
	}
	return out
}

// note is the platforms of the architecture, and why any has no run:
// "arm64 (skipped: no QEMU)", "x86_64, board (board: skipped: …)".
func (a ArchCount) note() string {
	s := strings.Join(a.Platforms, ", ")
	if len(a.Absent) == 0 {
		return s
	}
	absent := slices.Clone(a.Absent)
	if len(a.Platforms) == 1 {
		absent[0] = strings.TrimPrefix(absent[0], a.Platforms[0]+": ")
	}
	return s + " (" + strings.Join(absent, "; ") + ")"
}

// Status is how the platform's run ended, in a few words: "skipped: …"
// or "failed: …" for a platform without a run, "incomplete: …", else
// "ran".
func (p Platform) Status() string {
	switch {
	case p.Skipped != "":
		return "skipped: " + p.Skipped
	case p.Failed != "":
		return "failed without a report: " + p.Failed
	case p.Incomplete != "":
		return p.Incomplete
	}
	return "ran"
}

// String is the counts as the KTAP totals line writes them.
func (c Counts) String() string {
	return fmt.Sprintf("pass:%d fail:%d skip:%d deviation:%d total:%d", c.Passed, c.Failed, c.Skipped, c.Deviations, c.Total)
}
