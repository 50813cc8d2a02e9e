package taxonomy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/onsi/ginkgo/v2"
)

// TestREADMELabels keeps the README's label list, which users write CI
// filters from, in step with the declarations here.
func TestREADMELabels(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### Labels\n")
	if !ok {
		t.Fatal("README.md has no \"### Labels\" section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	bullets := map[string][]string{}
	tick := regexp.MustCompile("`([^`]+)`")
	var cur string
	for _, line := range strings.Split(section, "\n") {
		if head, ok := strings.CutPrefix(line, "- "); ok {
			cur, _, _ = strings.Cut(head, ":")
			cur, _, _ = strings.Cut(cur, " (")
		} else if !strings.HasPrefix(line, "  ") {
			cur = ""
		}
		if cur == "" {
			continue
		}
		for _, m := range tick.FindAllStringSubmatch(line, -1) {
			// No label has a space; `kvmspec caps` and the like are prose.
			if !strings.Contains(m[1], " ") {
				bullets[cur] = append(bullets[cur], m[1])
			}
		}
	}

	var areas []string
	for _, a := range Areas() {
		if !a.Internal() {
			areas = append(areas, a.String())
		}
	}
	want := map[string][]string{
		"Areas":         areas,
		"Kinds":         flatten(Kinds()),
		"Modes":         flatten(Modes()),
		"Architectures": flatten(Archs()),
		"Capabilities":  {NeedsPrefix + "<capability>", flatten([]ginkgo.Labels{Needs(hv.CapMultiVCPU)})[0]},
	}
	for _, b := range Backends() {
		want["Backends"] = append(want["Backends"], b.Label()...)
	}
	for cat, w := range want {
		if got := bullets[cat]; !slices.Equal(got, w) {
			t.Errorf("README %s: %q, taxonomy: %q", cat, got, w)
		}
	}
	for cat := range bullets {
		if _, ok := want[cat]; !ok {
			t.Errorf("README lists labels under %q, which the taxonomy does not know", cat)
		}
	}
}

func flatten(ls []ginkgo.Labels) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l...)
	}
	return out
}

// TestLabelsAreDistinct: one string must not mean two things, except the
// conformance area, which is also the conformance kind by declaration.
func TestLabelsAreDistinct(t *testing.T) {
	seen := map[string]string{}
	add := func(what string, labels ...string) {
		for _, l := range labels {
			if prev, dup := seen[l]; dup {
				t.Errorf("label %q is both %s and %s", l, prev, what)
			}
			seen[l] = what
		}
	}
	for _, a := range Areas() {
		add("an area", a.String())
	}
	for _, k := range Kinds() {
		if slices.Equal(k, KindConformance) {
			continue
		}
		add("a kind", k...)
	}
	add("a mode", flatten(Modes())...)
	add("an architecture", flatten(Archs())...)
	for _, b := range Backends() {
		add("a backend", b.Label()...)
	}
	if !slices.Equal(KindConformance, Conformance.Label()) {
		t.Errorf("the conformance kind %q is not the conformance area's label", KindConformance)
	}
}

func TestLookups(t *testing.T) {
	tests := []struct {
		labels      []string
		area, bknd  string
		areaPresent bool
	}{
		{[]string{"backend:emu", "smoke", "cpl3"}, "smoke", "emu", true},
		// perf is a kind, never an area, wherever it appears.
		{[]string{"backend:kvm", "perf", "dirtylog", "needs:dirty-ring"}, "dirtylog", "kvm", true},
		{[]string{"backend:kvm", "selftest"}, "selftest", "kvm", true},
		{[]string{"perf", "cpl0"}, "", "", false},
		{nil, "", "", false},
	}
	for _, tt := range tests {
		a, ok := AreaOf(tt.labels)
		if ok != tt.areaPresent || a.String() != tt.area {
			t.Errorf("AreaOf(%q) = %q, %v; want %q, %v", tt.labels, a, ok, tt.area, tt.areaPresent)
		}
		if got := BackendOf(tt.labels); got != tt.bknd {
			t.Errorf("BackendOf(%q) = %q, want %q", tt.labels, got, tt.bknd)
		}
	}
	for _, s := range []string{"", "Smoke", "perf", "kind:stress", "backend:kvm"} {
		if IsArea(s) {
			t.Errorf("IsArea(%q) = true", s)
		}
	}
	if !IsBackend("kvm") || !IsBackend("emu") || IsBackend("fake") || IsBackend("") {
		t.Error("IsBackend does not know exactly kvm and emu")
	}
	for _, tt := range []struct {
		labels []string
		want   hv.Arch
	}{
		{nil, hv.ArchX86_64},
		{[]string{"backend:kvm", "smoke", "cpl0"}, hv.ArchX86_64},
		{[]string{"backend:kvm", "smoke", "arch:arm64"}, hv.ArchARM64},
		// "arm64" alone is no architecture label.
		{[]string{"arm64"}, hv.ArchX86_64},
	} {
		if got := ArchOf(tt.labels); got != tt.want {
			t.Errorf("ArchOf(%q) = %q, want %q", tt.labels, got, tt.want)
		}
	}
	if got := Arch(hv.ArchARM64); !slices.Equal(got, ginkgo.Labels{"arch:arm64"}) {
		t.Errorf("Arch(arm64) = %q", got)
	}
	if got := Needs(hv.CapDirtyRing); !slices.Equal(got, ginkgo.Labels{"needs:dirty-ring"}) {
		t.Errorf("Needs(dirty-ring) = %q", got)
	}
}
