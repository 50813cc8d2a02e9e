package reports

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
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
