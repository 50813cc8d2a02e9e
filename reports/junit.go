package reports

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The JUnit structures follow the format CI systems read (Jenkins, GitLab,
// GitHub actions reporters): testsuites > testsuite > testcase, within
// the Jenkins xunit plugin's schema (fixtures/junit), the strictest of
// them: <testsuites> has no skipped count, only the testsuites do.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

// Skip types: the <skipped type=…> attribute, so that a tool can tell a
// known deviation from a missing capability without parsing the message.
const (
	SkipTypeDeviation       = "known-deviation"
	SkipTypeDeviationNotRun = "known-deviation-not-run"
	SkipTypeSkipped         = "skipped"
)

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Type    string `xml:"type,attr,omitempty"`
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// suiteKey groups cases into JUnit testsuites.
type suiteKey struct{ backend, area string }

func (k suiteKey) name() string {
	if k.backend == "" {
		return k.area
	}
	return k.backend + "/" + k.area
}

func (k suiteKey) classname() string {
	parts := []string{"kvmspec"}
	if k.backend != "" {
		parts = append(parts, k.backend)
	}
	return strings.Join(append(parts, k.area), ".")
}

// groups splits cases by (backend, area), keeping the order of first
// appearance (the cases are already sorted).
func groups(cases []Case) ([]suiteKey, map[suiteKey][]Case) {
	var keys []suiteKey
	m := map[suiteKey][]Case{}
	for _, c := range cases {
		k := suiteKey{c.Backend, c.Area}
		if _, ok := m[k]; !ok {
			keys = append(keys, k)
		}
		m[k] = append(m[k], c)
	}
	return keys, m
}

// WriteJUnit writes the run as JUnit XML: one testsuite per (backend, area)
// named "kvm/smoke", with the host facts, the backend's capabilities and
// the run's settings as properties. Known deviations are <skipped> whose
// message starts "known deviation"; panics and interrupts are <error>,
// other failures <failure>. Duplicate IDs do not stop it: Validate is the
// place that fails the run.
func (r Run) WriteJUnit(w io.Writer) error {
	keys, byKey := groups(r.Cases)
	top := junitSuites{Name: "kvmspec", Time: seconds(r.Meta.Finished.Sub(r.Meta.Started))}
	for _, k := range keys {
		cases := byKey[k]
		s := junitSuite{Name: k.name(), Hostname: r.hostname(k.backend), Properties: r.properties(k.backend)}
		var total time.Duration
		for _, c := range cases {
			jc := junitCase{Name: c.Name, Classname: k.classname(), Time: seconds(c.Duration), SystemOut: systemOut(c)}
			s.Tests++
			switch {
			case c.State == StatePassed:
			case c.State == StateSkipped || c.State == StateDeviation:
				s.Skipped++
				jc.Skipped = &junitMessage{Type: skipType(c), Message: c.Message}
			case c.State.IsError():
				s.Errors++
				jc.Error = &junitMessage{Type: string(c.State), Message: oneLine(c.Message), Text: c.failureOrMessage()}
			default:
				s.Failures++
				jc.Failure = &junitMessage{Type: string(c.State), Message: oneLine(c.Message), Text: c.failureOrMessage()}
			}
			total += c.Duration
			s.Cases = append(s.Cases, jc)
		}
		s.Time = seconds(total)
		if !cases[0].Started.IsZero() {
			s.Timestamp = earliest(cases).UTC().Format("2006-01-02T15:04:05")
		}
		top.Tests += s.Tests
		top.Failures += s.Failures
		top.Errors += s.Errors
		top.Suites = append(top.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(top); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func skipType(c Case) string {
	switch {
	case c.State != StateDeviation:
		return SkipTypeSkipped
	case strings.HasPrefix(c.Message, DeviationNotRunPrefix):
		return SkipTypeDeviationNotRun
	}
	return SkipTypeDeviation
}

func (c Case) failureOrMessage() string {
	if c.Failure != "" {
		return c.Failure
	}
	return c.Message
}

func earliest(cases []Case) time.Time {
	t := cases[0].Started
	for _, c := range cases[1:] {
		if !c.Started.IsZero() && c.Started.Before(t) {
			t = c.Started
		}
	}
	return t
}

func seconds(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
}

// properties are the testsuite properties for backend: the run's settings,
// the host facts and the backend's capabilities, so that a JUnit file read
// alone says where and how it was produced.
//
// In a platforms merge (MergePlatforms) a backend's testsuites carry its
// platform's own settings and host facts, plus kvmspec.platform and
// kvmspec.arch; every testsuite names the platforms, the counts per
// architecture and why a platform has no run.
func (r Run) properties(backend string) []junitProperty {
	m := r.Meta
	plat := r.platformOfBackend(backend)
	if plat != nil && plat.Meta != nil {
		m = *plat.Meta
		m.Caps = r.Meta.Caps
	}
	ps := []junitProperty{
		{"kvmspec.version", m.Version},
		{"kvmspec.backends", strings.Join(m.Backends, ",")},
		{"kvmspec.seed", strconv.FormatInt(m.Seed, 10)},
		{"kvmspec.label_filter", m.LabelFilter},
		{"kvmspec.focus", m.Focus},
		{"kvmspec.strict", strconv.FormatBool(m.Strict)},
		{"kvmspec.profile", m.Profile},
		{"kvmspec.profile_file", m.ProfileFile},
		{"kvmspec.profile_deviations", strconv.Itoa(m.Deviations)},
	}
	if m.Skip != "" {
		ps = append(ps, junitProperty{"kvmspec.skip", m.Skip})
	}
	if r.Incomplete != "" {
		ps = append(ps, junitProperty{"kvmspec.incomplete", r.Incomplete})
	}
	if sh := m.Shard; sh != nil && sh.Index > 0 {
		ps = append(ps, junitProperty{"kvmspec.shard", sh.String()})
	} else if sh != nil {
		ps = append(ps, junitProperty{"kvmspec.shards_merged", strings.Join(sh.Merged, ",")})
	}
	keys := make([]string, 0, len(m.Params))
	for k := range m.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ps = append(ps, junitProperty{"kvmspec.param." + k, m.Params[k]})
	}
	if backend != "" {
		ps = append(ps, junitProperty{"kvmspec.backend", backend})
	}
	ps = append(ps, r.platformProperties(plat)...)
	for _, p := range m.Host {
		ps = append(ps, junitProperty{p.Name, p.Value})
	}
	caps := append([]CapLine{}, m.Caps[backend]...)
	sort.SliceStable(caps, func(i, j int) bool { return caps[i].Name < caps[j].Name })
	for _, c := range caps {
		ps = append(ps, junitProperty{"cap." + c.Name, c.String()})
	}
	return ps
}

// String formats the line as "yes", "yes: detail" or "no: why".
func (c CapLine) String() string {
	s := "no"
	if c.Supported {
		s = "yes"
	}
	if c.Detail != "" {
		s += ": " + c.Detail
	}
	return s
}

// systemOut gathers a case's report entries (host health, guest output,
// measurements) and captured output.
func systemOut(c Case) string {
	var b strings.Builder
	for _, e := range c.Entries {
		v := e.Value
		if strings.Contains(v, "\n") {
			fmt.Fprintf(&b, "%s:\n%s\n", e.Name, indent(v))
		} else {
			fmt.Fprintf(&b, "%s: %s\n", e.Name, v)
		}
	}
	if c.Output != "" {
		if b.Len() > 0 {
			b.WriteString("output:\n")
		}
		b.WriteString(c.Output)
	}
	return b.String()
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// hostname is the host.hostname fact of the backend's platform, or of
// the run.
func (r Run) hostname(backend string) string {
	if p := r.platformOfBackend(backend); p != nil && p.Meta != nil {
		return hostFact(p.Meta.Host, "host.hostname")
	}
	return hostFact(r.Meta.Host, "host.hostname")
}

// platformProperties are the testsuite properties of a platforms merge:
// the suite's platform and architecture (plat, nil for the suite
// pseudo-cases), the platforms, the counts per architecture and why a
// platform has no run; none for another run.
func (r Run) platformProperties(plat *Platform) []junitProperty {
	if len(r.Meta.Platforms) == 0 {
		return nil
	}
	var ps []junitProperty
	if plat != nil {
		ps = append(ps, junitProperty{"kvmspec.platform", plat.Name}, junitProperty{"kvmspec.arch", plat.Arch})
	}
	var names []string
	for _, p := range r.Meta.Platforms {
		names = append(names, p.Name)
	}
	ps = append(ps, junitProperty{"kvmspec.platforms", strings.Join(names, ",")})
	for _, a := range r.ArchCounts() {
		ps = append(ps, junitProperty{"kvmspec.arch." + a.Arch, a.Counts.String()})
	}
	for _, p := range r.Meta.Platforms {
		if p.Skipped != "" || p.Failed != "" {
			ps = append(ps, junitProperty{"kvmspec.platform." + p.Name + ".status", p.Status()})
		}
	}
	return ps
}
