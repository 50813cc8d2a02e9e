package reports

import (
	"maps"
	"slices"

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
