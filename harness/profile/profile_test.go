package profile

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/kvmspec/kvmspec/harness/host"
)

func loadTestdata(t *testing.T) []Profile {
	t.Helper()
	ps, err := Load(os.DirFS("testdata"), "hosts")
	if err != nil {
		t.Fatalf("Load(testdata/hosts): %v", err)
	}
	return ps
}

func TestLoadTestdata(t *testing.T) {
	ps := loadTestdata(t)
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "default,pvm,vmx" {
		t.Fatalf("profiles %s, want default,pvm,vmx in file order (notes.txt ignored)", got)
	}
	pvm := Find(ps, "pvm")
	if pvm == nil || pvm.Source != "hosts/pvm.json" || len(pvm.Deviations) != 2 {
		t.Fatalf("pvm profile: %+v", pvm)
	}
	if !pvm.Deviations[0].Runs() || pvm.Deviations[1].Runs() {
		t.Errorf("run flags not decoded: %+v", pvm.Deviations)
	}
	if Find(ps, "nope") != nil {
		t.Error("Find found a profile that does not exist")
	}
}

func pvmFacts() host.Facts {
	return host.Facts{
		Kernel: "6.18.44-fc-v669", Arch: "x86_64", CPUVendor: "GenuineIntel",
		CPUFlags: []string{"fpu", "hypervisor"},
		KVMParams: map[string]map[string]string{
			"kvm":     {"enable_pmu": "N"},
			"kvm_pvm": {"pvm_native": "Y"},
		},
	}
}

func TestDetect(t *testing.T) {
	ps := loadTestdata(t)
	vmx := host.Facts{Kernel: "6.8.0", Arch: "x86_64", CPUVendor: "GenuineIntel", CPUFlags: []string{"vmx"},
		KVMParams: map[string]map[string]string{"kvm": {}, "kvm_intel": {}}}
	tests := []struct {
		name  string
		facts func() host.Facts
		want  string
	}{
		{"pvm host", pvmFacts, "pvm"},
		{"vmx host", func() host.Facts { return vmx }, "vmx"},
		{"pvm param differs", func() host.Facts {
			f := pvmFacts()
			f.KVMParams["kvm_pvm"] = map[string]string{"pvm_native": "N"}
			return f
		}, "default"},
		{"pvm param missing", func() host.Facts {
			f := pvmFacts()
			f.KVMParams["kvm"] = map[string]string{}
			return f
		}, "default"},
		{"kernel regexp", func() host.Facts {
			f := pvmFacts()
			f.Kernel = "5.15.0"
			return f
		}, "default"},
		{"vmx needs the flag", func() host.Facts {
			f := vmx
			f.CPUFlags = []string{"svm"}
			return f
		}, "default"},
		{"vmx needs the vendor", func() host.Facts {
			f := vmx
			f.CPUVendor = "AuthenticAMD"
			return f
		}, "default"},
		{"no facts at all", func() host.Facts { return host.Facts{} }, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Detect(ps, tt.facts())
			if got == nil || got.Name != tt.want {
				t.Errorf("Detect = %v, want %s", got, tt.want)
			}
		})
	}
	// Without a default, an unknown host has no profile; an empty match
	// not named default never matches.
	noDefault := []Profile{{Name: "empty", Deviations: []Deviation{}}, ps[1]}
	if got := Detect(noDefault, host.Facts{}); got != nil {
		t.Errorf("Detect without default = %s, want nil", got.Name)
	}
	if got := Detect(nil, pvmFacts()); got != nil {
		t.Errorf("Detect(nil) = %v", got)
	}
	// A profile built in code (no compiled regexp) still matches.
	code := Profile{Name: "code", Match: Match{KernelRegexp: `^6\.18`}}
	if !code.Matches(pvmFacts()) {
		t.Error("profile built in code does not match on kernel_regexp")
	}
	bad := Profile{Name: "bad", Match: Match{KernelRegexp: `(`}}
	if bad.Matches(pvmFacts()) {
		t.Error("an invalid regexp matched")
	}
}

func TestLookup(t *testing.T) {
	pvm := Find(loadTestdata(t), "pvm")
	tests := []struct {
		backend, spec, want string
	}{
		{"kvm", "smoke/exceptions / #BP [cpl0]", "pvm-cpl0-int3"},
		{"kvm", "smoke/exceptions / #BP [cpl3]", ""},
		{"emu", "smoke/exceptions / #BP [cpl0]", ""}, // the emulator is not PVM
		{"kvm", "debug/guest int3 [cpl0]", "pvm-cpl0-int3"},
		{"kvm", "debug/int3 [cpl0]", "pvm-cpl0-int3"},
		{"kvm", "debug/int3 [cpl0] again", ""},
		{"kvm", "dirtylog/ring / full at size-64 [cpl0]", "pvm-dirty-ring-cpl0"},
		{"kvm", "dirtylog/bitmap [cpl0]", ""},
		{"kvm", "", ""},
	}
	for _, tt := range tests {
		d := pvm.Lookup(tt.backend, tt.spec)
		got := ""
		if d != nil {
			got = d.ID
		}
		if got != tt.want {
			t.Errorf("Lookup(%q, %q) = %q, want %q", tt.backend, tt.spec, got, tt.want)
		}
	}
	var none *Profile
	if none.Lookup("kvm", "smoke/x") != nil {
		t.Error("nil profile returned a deviation")
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"smoke/pio out [cpl3]", "smoke/pio out [cpl3]", true},
		{"smoke/pio out [cpl3]", "smoke/pio out c", false}, // brackets are literal
		{"smoke/*", "smoke/a / b", true},
		{"*", "", true},
		{"*/x", "a/b/x", true},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"*#BP*cpl0*", "smoke/exceptions / #BP [cpl0]", true},
		{"*#BP*cpl0*", "smoke/exceptions / #BP [cpl3]", false},
		{"a*b*c", "abxbc", true},
		{"a*b*c", "acb", false},
		{"**", "anything", true},
		{"x", "xx", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

const okDeviation = `{"id": "d1", "backend": "kvm", "specs": ["smoke/x"], "reason": "measured", "run": true}`

func profileJSON(deviations ...string) string {
	return `{"name": "p", "description": "d", "match": {"kvm_modules": ["kvm_pvm"]}, "deviations": [` +
		strings.Join(deviations, ",") + `]}`
}

// TestLoadErrors checks that every mistake is reported with the file and
// the field (or position) a person must fix.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string
	}{
		{"ok", profileJSON(okDeviation), nil},
		{"empty reason", profileJSON(okDeviation, okDeviation, `{"id": "d3", "backend": "kvm", "specs": ["smoke/x"], "reason": " ", "run": true}`),
			[]string{"hosts/p.json: ", "deviations[2].reason: empty", `deviations[1].id: "d1" already used by deviations[0]`}},
		{"unknown field", `{"name": "p", "description": "d", "match": {}, "deviations": [], "extra": 1}`,
			[]string{"hosts/p.json: line 1", `unknown field "extra"`}},
		{"unknown match key", `{"name": "p", "description": "d", "match": {"cpu_vendr": "x"}, "deviations": []}`,
			[]string{`unknown field "cpu_vendr"`}},
		{"syntax", "{\n  \"name\": \"p\",\n  \"description\": \"d\" \"match\": {}\n}",
			[]string{"hosts/p.json: line 3 col 22 (offset 38): invalid JSON"}},
		{"truncated", `{"name": "p", "descr`, []string{"hosts/p.json: line 1 col 21 (offset 20): truncated JSON"}},
		{"wrong type", `{"name": "p", "description": "d", "match": {}, "deviations": [{"run": "yes"}]}`,
			[]string{"deviations.run: string is not a bool"}},
		{"empty file", ``, []string{"hosts/p.json: empty file"}},
		{"trailing data", profileJSON() + ` {}`, []string{"data after the profile object"}},
		{"name mismatch", strings.Replace(profileJSON(), `"name": "p"`, `"name": "q"`, 1), []string{`name: "q" differs from the file name "p.json"`}},
		{"no deviations", `{"name": "p", "description": "d", "match": {}}`, []string{"deviations: missing (write [] for none)"}},
		{"no description", `{"name": "p", "match": {}, "deviations": []}`, []string{"description: empty"}},
		{"every deviation field", profileJSON(`{"id": "", "backend": "", "specs": [], "reason": ""}`),
			[]string{"deviations[0].id: empty", "deviations[0].backend: empty", "deviations[0].specs: empty", "deviations[0].reason: empty", "deviations[0].run: missing"}},
		{"bad id and backend", profileJSON(`{"id": "Has Space", "backend": "KVM!", "specs": ["smoke/x"], "reason": "r", "run": false}`),
			[]string{`deviations[0].id: "Has Space"`, `deviations[0].backend: "KVM!" is not a backend name`}},
		{"bad globs", profileJSON(`{"id": "d", "backend": "kvm", "specs": ["", "noslash", "smoke/", " smoke/x", "Smoke Test/x", "smoke/a\tb"], "reason": "r", "run": true}`),
			[]string{"specs[0]: empty", `specs[1]: "noslash" is not`, `specs[2]: "smoke/" is not`, "specs[3]: \" smoke/x\" has leading", `specs[4]: "Smoke Test/x": "Smoke Test" names no area`, "specs[5]: ", "control characters"}},
		// A typo in an area, or a glob over areas that matches none, would
		// make a deviation that never applies.
		{"unknown areas", profileJSON(`{"id": "d", "backend": "kvm", "specs": ["smok/x", "perf/x", "dirty*s/x", "smoke/x"], "reason": "r", "run": true}`),
			[]string{`specs[0]: "smok/x": "smok" names no area (want one of smoke,`, `specs[1]: "perf/x"`, `specs[2]: "dirty*s/x"`}},
		{"unknown backend", profileJSON(`{"id": "d", "backend": "xen", "specs": ["smoke/x"], "reason": "r", "run": true}`),
			[]string{`deviations[0].backend: "xen" is not a backend (want [kvm emu])`}},
		{"glob area wildcard ok", profileJSON(`{"id": "d", "backend": "kvm", "specs": ["*/x [cpl0]", "smo*/y"], "reason": "r", "run": true}`), nil},
		{"bad match", `{"name": "p", "description": "d", "match": {"kvm_modules": ["kvm pvm"], "kvm_params": {"nodot": "Y"}, "kernel_regexp": "("}, "deviations": []}`,
			[]string{`match.kvm_modules[0]: "kvm pvm"`, `match.kvm_params: key "nodot"`, "match.kernel_regexp: error parsing regexp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(fstest.MapFS{"hosts/p.json": {Data: []byte(tt.data)}}, "hosts")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadReportsEveryFile(t *testing.T) {
	fsys := fstest.MapFS{
		"hosts/a.json": {Data: []byte("{")},
		"hosts/b.json": {Data: []byte(`{"name": "b"}`)},
		"hosts/c.json": {Data: []byte(strings.Replace(profileJSON(), `"p"`, `"c"`, 1))},
	}
	_, err := Load(fsys, "hosts")
	if err == nil || !strings.Contains(err.Error(), "hosts/a.json") || !strings.Contains(err.Error(), "hosts/b.json") || strings.Contains(err.Error(), "hosts/c.json") {
		t.Fatalf("error should name a.json and b.json only: %v", err)
	}
	ps, err := Load(fstest.MapFS{}, "hosts")
	if err != nil || len(ps) != 0 {
		t.Fatalf("empty dir: %v, %v", ps, err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(profileJSON(okDeviation)))
	f.Add([]byte(`{"name": "p", "description": "d", "match": {"kernel_regexp": "^6"}, "deviations": []}`))
	f.Add([]byte(`{"deviations": [{"run": null, "specs": ["*"]}]}`))
	f.Add([]byte("{\"name\": \"p\"\n,"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Load(fstest.MapFS{"hosts/p.json": {Data: data}}, "hosts")
		if err != nil {
			if !strings.Contains(err.Error(), "hosts/p.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever loads must be usable without panics.
		p := Detect(ps, pvmFacts())
		if p != nil {
			for _, d := range p.Deviations {
				for _, s := range d.Specs {
					p.Lookup(d.Backend, s)
				}
			}
		}
	})
}
