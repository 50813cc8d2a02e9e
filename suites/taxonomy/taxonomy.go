// Package taxonomy declares every label kvmspec's specs carry, once: the
// areas a spec belongs to, the kinds of spec, the backends, the privilege
// modes test code runs at, the guest architecture of the specs that are
// not x86-64's and the `needs:` labels of capabilities. Users
// select with these strings (`--label-filter 'smoke && cpl3'`), host
// profiles and reports name areas with them, so they are a stable interface:
// renaming one breaks CI jobs and profiles.
//
// The framework registers areas by their typed value (framework.Register
// takes an Area), reports find a case's area and backend with AreaOf and
// BackendOf, and profiles check the area of a spec pattern with IsArea. A
// string literal naming an area anywhere else is a bug.
package taxonomy

import (
	"strings"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/onsi/ginkgo/v2"
)

// Area is the top-level group a spec belongs to: every spec carries exactly
// one area label, given by the area it is registered under, and its spec ID
// ("area/…") starts with it. Only this package can make one.
type Area struct {
	name string
	// internal areas hold kvmspec's own tests of itself; they are not
	// part of the user-facing label list.
	internal bool
}

// String is the area's label, e.g. "smoke".
func (a Area) String() string { return a.name }

// Label is the area's Ginkgo label.
func (a Area) Label() ginkgo.Labels { return ginkgo.Label(a.name) }

// Internal reports whether the area exists only for kvmspec's own tests.
func (a Area) Internal() bool { return a.internal }

// Areas, in the order reports and docs list them.
var (
	// Smoke is the quick check that a backend runs guests at all: every
	// ucall, exit kind and exception once. Use it for a spec that must pass
	// on every backend before anything else is worth running.
	Smoke = Area{name: "smoke"}
	// DirtyLog is dirty page tracking: bitmap, clear-log and dirty rings.
	DirtyLog = Area{name: "dirtylog"}
	// PageFault is demand paging, holes, read-only and missing memory, and
	// guest page faults with their error codes and A/D bits.
	PageFault = Area{name: "pagefault"}
	// Debug is host-side guest debug: breakpoints, watchpoints, single-step.
	Debug = Area{name: "debug"}
	// Memslot is memslot creation, moves, deletion and limits.
	Memslot = Area{name: "memslot"}
	// PMU is the guest-visible performance counters and their overflow
	// interrupts.
	PMU = Area{name: "pmu"}
	// VGPU is the paravirtual GPU device model.
	VGPU = Area{name: "vgpu"}
	// LightNVM is the Open-Channel SSD device model.
	LightNVM = Area{name: "lightnvm"}
	// PageReport is free page reporting.
	PageReport = Area{name: "pagereport"}
	// Conformance is the differential area: the same guest programs on the
	// backend and on the bundled reference, compared register by register.
	// Its label is also the conformance kind (see KindConformance).
	Conformance = Area{name: "conformance"}
	// SelfTest holds specs that fail, time out or skip on purpose so that
	// kvmspec's own tests can check how outcomes are reported. It is
	// registered only under KVMSPEC_SELFTEST=1.
	SelfTest = Area{name: "selftest", internal: true}
)

var areas = []Area{Smoke, DirtyLog, PageFault, Debug, Memslot, PMU, VGPU, LightNVM, PageReport, Conformance, SelfTest}

// Areas returns every area, the internal ones last.
func Areas() []Area { return append([]Area(nil), areas...) }

// ParseArea returns the area whose label is s.
func ParseArea(s string) (Area, bool) {
	for _, a := range areas {
		if a.name == s {
			return a, true
		}
	}
	return Area{}, false
}

// IsArea reports whether s is an area label.
func IsArea(s string) bool {
	_, ok := ParseArea(s)
	return ok
}

// AreaOf returns the area among a spec's labels (its first area label).
func AreaOf(labels []string) (Area, bool) {
	for _, l := range labels {
		if a, ok := ParseArea(l); ok {
			return a, true
		}
	}
	return Area{}, false
}

// Kinds say what sort of verdict a spec gives. A spec without a kind label
// is an ordinary pass/fail check of behaviour.
var (
	// KindConformance marks differential specs, which compare a backend
	// with the bundled reference. It is the Conformance area's label: every
	// spec of that area has it and no other spec does, so no spec adds it
	// by hand.
	KindConformance = Conformance.Label()
	// Perf marks measurement specs: Serial, gmeasure experiments attached
	// to the report, no pass/fail on time. Use it on a container whose
	// specs exist to produce numbers.
	Perf = ginkgo.Label("perf")
	// Stress marks long specs that repeat one operation under concurrency
	// to shake out races; CI may run them less often.
	Stress = ginkgo.Label("kind:stress")
	// Fuzz marks specs that run seeded random inputs (programs, states);
	// each prints its seed, and --seed replays it.
	Fuzz = ginkgo.Label("kind:fuzz")
)

// Kinds returns every kind label.
func Kinds() []ginkgo.Labels { return []ginkgo.Labels{KindConformance, Perf, Stress, Fuzz} }

// Modes: the privilege level test code runs at. Every spec that runs guest
// test code carries one, so a host that emulates one ring can be judged
// per ring.
var (
	// CPL0 marks specs whose test code runs at ring 0.
	CPL0 = ginkgo.Label("cpl0")
	// CPL3 marks specs whose test code runs at ring 3.
	CPL3 = ginkgo.Label("cpl3")
)

// Modes returns the mode labels.
func Modes() []ginkgo.Labels { return []ginkgo.Labels{CPL0, CPL3} }

// Backend names a hypervisor backend; every spec runs once per selected
// backend, inside a container labelled "backend:<name>".
type Backend string

// The backends kvmspec ships.
const (
	// KVM is the real backend over /dev/kvm.
	KVM Backend = "kvm"
	// Emu is the bundled software hypervisor.
	Emu Backend = "emu"
)

const backendPrefix = "backend:"

// Label is the backend's container label, e.g. "backend:kvm".
func (b Backend) Label() ginkgo.Labels { return ginkgo.Label(backendPrefix + string(b)) }

// Backends returns the shipped backends in the order "all" runs them.
func Backends() []Backend { return []Backend{KVM, Emu} }

// IsBackend reports whether name is a shipped backend.
func IsBackend(name string) bool {
	for _, b := range Backends() {
		if string(b) == name {
			return true
		}
	}
	return false
}

// BackendOf returns the backend named by a spec's "backend:" label, or "".
func BackendOf(labels []string) string {
	for _, l := range labels {
		if v, ok := strings.CutPrefix(l, backendPrefix); ok {
			return v
		}
	}
	return ""
}

// ArchPrefix starts the label of a guest architecture.
const ArchPrefix = "arch:"

// Arch is the label of the guest architecture a spec's guests are built
// for ("arch:arm64"). Specs without one run x86-64 guests (every spec
// written before arm64 guests existed); the framework runs a spec only on
// a backend whose guests are of its architecture and skips it elsewhere
// with the reason.
func Arch(a hv.Arch) ginkgo.Labels { return ginkgo.Label(ArchPrefix + string(a)) }

// Archs returns the architecture labels specs carry: every guest
// architecture but x86-64, which is the unlabelled default.
func Archs() []ginkgo.Labels { return []ginkgo.Labels{Arch(hv.ArchARM64)} }

// ArchOf returns the guest architecture of a spec's labels: the one its
// "arch:" label names, x86-64 without one.
func ArchOf(labels []string) hv.Arch {
	for _, l := range labels {
		if v, ok := strings.CutPrefix(l, ArchPrefix); ok {
			return hv.Arch(v)
		}
	}
	return hv.ArchX86_64
}

// NeedsPrefix starts the label of a capability a spec requires.
const NeedsPrefix = "needs:"

// Needs is the label of a capability a spec requires ("needs:dirty-ring"),
// so CI can select or exclude by feature. Put it on every spec that calls
// Backend.Require(c); the capability names are hv's.
func Needs(c hv.Cap) ginkgo.Labels { return ginkgo.Label(NeedsPrefix + string(c)) }
