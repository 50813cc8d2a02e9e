// Package profile loads host profiles: descriptions of a class of host (how
// to recognise it from host.Facts) and the known deviations of its
// hypervisor, each naming the specs it affects and why.
//
// Deviations are data rather than code so that the suite can fail where a
// hypervisor is wrong and CI can still gate on everything else: a spec hit
// by a known deviation is reported as such, and one that passes anyway is
// reported as an unexpected pass, so the list cannot rot.
package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
)

// DefaultName is the name of the profile that matches every host no other
// profile matches. A profile of any other name with an empty match matches
// nothing, so that a forgotten match block cannot claim every host.
const DefaultName = "default"

// Profile is one host class, decoded from one JSON file.
type Profile struct {
	// Name identifies the profile (in reports and --profile); it must equal
	// the file name without ".json".
	Name        string      `json:"name"`
	Description string      `json:"description"` // what the host class is
	Match       Match       `json:"match"`       // how to recognise it
	Deviations  []Deviation `json:"deviations"`  // its known deviations, possibly none
	// Source is the file the profile came from, for messages.
	Source string `json:"-"`
}

// Match says how to recognise the host class. Every condition given must
// hold; conditions left out are not checked.
type Match struct {
	// KVMModules lists modules that must be loaded, seen through their
	// /sys/module/<name>/parameters directory (e.g. "kvm_pvm").
	KVMModules []string `json:"kvm_modules,omitempty"`
	// KVMParams maps "module.param" to the exact value it must have,
	// e.g. {"kvm_pvm.pvm_native": "Y"}.
	KVMParams map[string]string `json:"kvm_params,omitempty"`
	// CPUVendor must equal host.Facts.CPUVendor (e.g. "GenuineIntel").
	CPUVendor string `json:"cpu_vendor,omitempty"`
	// CPUFlags must all be listed by the CPU (e.g. ["vmx"]).
	CPUFlags []string `json:"cpu_flags,omitempty"`
	// Arch must equal host.Facts.Arch (e.g. "x86_64").
	Arch string `json:"arch,omitempty"`
	// KernelRegexp must match host.Facts.Kernel (Go regexp syntax).
	KernelRegexp string `json:"kernel_regexp,omitempty"`

	kernel *regexp.Regexp
}

// Deviation is one known way the host's hypervisor departs from what the
// specs expect.
type Deviation struct {
	// ID names the deviation in reports; unique within its profile.
	ID string `json:"id"`
	// Backend is the backend it affects, e.g. "kvm".
	Backend string `json:"backend"`
	// Specs are glob patterns over spec IDs ("area/name", e.g.
	// "smoke/exceptions / #BP [cpl0]"). Only '*' is special: it matches
	// any run of characters, '/' included. Everything else, brackets too,
	// is literal, because spec names contain "[cpl0]".
	Specs []string `json:"specs"`
	// Reason says why, with a measured fact or a link; it becomes the
	// skip message after "known deviation: ".
	Reason string `json:"reason"`
	// Run says whether affected specs run (true: expected to fail, a pass
	// is reported as unexpected) or are not run because running them
	// harms the host (false). It is required, so nobody gets either
	// behaviour by forgetting the field.
	Run *bool `json:"run"`
}

// Runs reports whether affected specs are run.
func (d *Deviation) Runs() bool { return d.Run != nil && *d.Run }

// Matches reports whether spec ID id is one of the deviation's specs.
func (d *Deviation) Matches(id string) bool {
	for _, p := range d.Specs {
		if globMatch(p, id) {
			return true
		}
	}
	return false
}

// Load reads every *.json file in dir of fsys, in file-name order. Decoding
// is strict (unknown fields are errors) and every profile is validated;
// errors name the file and the field, e.g.
// "hosts/pvm.json: deviations[2].reason: empty".
func Load(fsys fs.FS, dir string) ([]Profile, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("profiles in %s: %w", dir, err)
	}
	sort.Strings(names)
	var out []Profile
	var errs []error
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := Parse(name, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Parse decodes and validates one profile; file names it in errors and
// must be the profile's path (its base name is the profile's name).
func Parse(file string, data []byte) (Profile, error) {
	var p Profile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("%s: %s", file, describeJSONError(data, err, dec.InputOffset()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Profile{}, fmt.Errorf("%s: %s: data after the profile object", file, position(data, dec.InputOffset()))
	}
	p.Source = file
	if err := p.validate(strings.TrimSuffix(path.Base(file), ".json")); err != nil {
		return Profile{}, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// describeJSONError turns decoder errors into "line L col C (offset N): …".
func describeJSONError(data []byte, err error, inputOffset int64) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the offending byte too; point at it.
		return fmt.Sprintf("%s: invalid JSON: %v", position(data, syn.Offset-1), syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("%s: %s: %s is not a %s", position(data, typ.Offset), field, typ.Value, typ.Type)
	case errors.Is(err, io.EOF):
		return "empty file"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("%s: truncated JSON", position(data, int64(len(data))))
	}
	// Unknown fields and other decoder errors carry no offset of their
	// own; the decoder has consumed up to the object that held them.
	return fmt.Sprintf("%s: %v", position(data, inputOffset), err)
}

func position(data []byte, off int64) string {
	off = max(0, min(off, int64(len(data))))
	before := data[:off]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d col %d (offset %d)", line, col, off)
}

var (
	idPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	backendPattern = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	modulePattern  = regexp.MustCompile(`^[a-z0-9_]+$`)
)

func (p *Profile) validate(fileBase string) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch {
	case p.Name == "":
		bad("name", "empty")
	case p.Name != fileBase:
		bad("name", "%q differs from the file name %q", p.Name, fileBase+".json")
	}
	if strings.TrimSpace(p.Description) == "" {
		bad("description", "empty")
	}
	m := &p.Match
	for i, mod := range m.KVMModules {
		if !modulePattern.MatchString(mod) {
			bad(fmt.Sprintf("match.kvm_modules[%d]", i), "%q is not a module name", mod)
		}
	}
	for k := range m.KVMParams {
		mod, param, ok := strings.Cut(k, ".")
		if !ok || !modulePattern.MatchString(mod) || param == "" {
			bad("match.kvm_params", "key %q is not \"module.param\"", k)
		}
	}
	if m.KernelRegexp != "" {
		re, err := regexp.Compile(m.KernelRegexp)
		if err != nil {
			bad("match.kernel_regexp", "%v", err)
		}
		m.kernel = re
	}
	if p.Deviations == nil {
		bad("deviations", "missing (write [] for none)")
	}
	ids := map[string]int{}
	for i, d := range p.Deviations {
		field := func(name string) string { return fmt.Sprintf("deviations[%d].%s", i, name) }
		switch {
		case d.ID == "":
			bad(field("id"), "empty")
		case !idPattern.MatchString(d.ID):
			bad(field("id"), "%q: use lower-case letters, digits, '.', '_' and '-'", d.ID)
		}
		if j, dup := ids[d.ID]; dup && d.ID != "" {
			bad(field("id"), "%q already used by deviations[%d]", d.ID, j)
		} else {
			ids[d.ID] = i
		}
		switch {
		case d.Backend == "":
			bad(field("backend"), "empty")
		case !backendPattern.MatchString(d.Backend):
			bad(field("backend"), "%q is not a backend name", d.Backend)
		case !taxonomy.IsBackend(d.Backend):
			bad(field("backend"), "%q is not a backend (want %v)", d.Backend, taxonomy.Backends())
		}
		if len(d.Specs) == 0 {
			bad(field("specs"), "empty")
		}
		for j, s := range d.Specs {
			if err := validateGlob(s); err != nil {
				bad(fmt.Sprintf("deviations[%d].specs[%d]", i, j), "%v", err)
			}
		}
		if strings.TrimSpace(d.Reason) == "" {
			bad(field("reason"), "empty")
		}
		if d.Run == nil {
			bad(field("run"), "missing (true: run and expect failure; false: do not run, it harms the host)")
		}
	}
	return errors.Join(errs...)
}

// validateGlob checks that a pattern looks like a spec ID: "area/name",
// where the area part may itself use '*'.
func validateGlob(s string) error {
	area, name, ok := strings.Cut(s, "/")
	switch {
	case s == "":
		return errors.New("empty")
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%q has leading or trailing space", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("%q has control characters", s)
	case !ok || name == "":
		return fmt.Errorf("%q is not \"area/spec name\"", s)
	case !matchesArea(area):
		return fmt.Errorf("%q: %q names no area (want one of %s)", s, area, areaList())
	}
	return nil
}

// matchesArea reports whether the area part of a spec pattern, itself
// possibly a glob, names at least one area, so that a typo in a profile
// is an error and not a deviation that silently matches nothing.
func matchesArea(pattern string) bool {
	for _, a := range taxonomy.Areas() {
		if globMatch(pattern, a.String()) {
			return true
		}
	}
	return false
}

func areaList() string {
	var names []string
	for _, a := range taxonomy.Areas() {
		names = append(names, a.String())
	}
	return strings.Join(names, ", ")
}

// globMatch reports whether s matches pattern, where '*' matches any run of
// characters and everything else matches itself.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	// Leftmost matching of the middle parts leaves the most room for the
	// suffix, so checking it last is enough.
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// Matches reports whether the host described by f belongs to the profile.
// A profile with no conditions matches only when it is the default.
func (p *Profile) Matches(f host.Facts) bool {
	m := &p.Match
	if m.empty() {
		return p.Name == DefaultName
	}
	for _, mod := range m.KVMModules {
		if _, ok := f.KVMParams[mod]; !ok {
			return false
		}
	}
	for k, want := range m.KVMParams {
		mod, param, _ := strings.Cut(k, ".")
		got, ok := f.KVMParams[mod][param]
		if !ok || got != want {
			return false
		}
	}
	if m.CPUVendor != "" && m.CPUVendor != f.CPUVendor {
		return false
	}
	for _, fl := range m.CPUFlags {
		if !f.HasFlag(fl) {
			return false
		}
	}
	if m.Arch != "" && m.Arch != f.Arch {
		return false
	}
	if m.KernelRegexp != "" {
		re := m.kernel
		if re == nil { // a Profile built in code rather than parsed
			var err error
			if re, err = regexp.Compile(m.KernelRegexp); err != nil {
				return false
			}
		}
		if !re.MatchString(f.Kernel) {
			return false
		}
	}
	return true
}

func (m *Match) empty() bool {
	return len(m.KVMModules) == 0 && len(m.KVMParams) == 0 && m.CPUVendor == "" &&
		len(m.CPUFlags) == 0 && m.Arch == "" && m.KernelRegexp == ""
}

// Detect returns the first profile, in the given order, that matches the
// host, or the profile named "default" when no other does, or nil.
func Detect(profiles []Profile, f host.Facts) *Profile {
	var fallback *Profile
	for i := range profiles {
		p := &profiles[i]
		switch {
		case !p.Matches(f):
		case p.Name != DefaultName:
			return p
		case fallback == nil:
			fallback = p
		}
	}
	return fallback
}

// Lookup returns the first deviation of the profile that affects spec ID
// specID on backend, or nil. It is safe on a nil profile (no profile
// detected), which has no deviations.
func (p *Profile) Lookup(backend, specID string) *Deviation {
	if p == nil {
		return nil
	}
	for i := range p.Deviations {
		d := &p.Deviations[i]
		if d.Backend == backend && d.Matches(specID) {
			return d
		}
	}
	return nil
}

// Find returns the profile named name, or nil; for --profile, which
// overrides detection.
func Find(profiles []Profile, name string) *Profile {
	for i := range profiles {
		if profiles[i].Name == name {
			return &profiles[i]
		}
	}
	return nil
}
