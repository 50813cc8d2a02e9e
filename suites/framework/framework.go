// Package framework builds the Ginkgo spec tree: one container per
// selected backend, one per registered area inside it, host-profile
// deviations and host health checks around every spec. The kvmspec CLI and
// `go test ./suites/...` both run through it.
package framework

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/host"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/profile"
	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	. "github.com/onsi/gomega"
)

// Backend is one hypervisor as the specs see it.
type Backend struct {
	Name string
	// HV is nil when the backend cannot run here; Err says why.
	HV   hv.Hypervisor
	Err  error
	Caps hv.Caps
	// Env holds what the run was started with.
	Env *Env
	// Profile is the detected host profile (nil: none matched).
	Profile *profile.Profile
	// Health checks the host kernel around every spec (real KVM only).
	Health bool
	// HealthSources overrides where health is read from (tests); the zero
	// value reads /proc/sys/kernel/tainted and /dev/kmsg.
	HealthSources *host.Sources
}

// Env is the run-wide configuration specs may read.
type Env struct {
	Seed   int64
	Strict bool
	// Params are free-form spec parameters (--param key=value).
	Params map[string]string
}

// Param returns the named parameter or def.
func (e *Env) Param(name, def string) string {
	if v, ok := e.Params[name]; ok {
		return v
	}
	return def
}

// Available reports whether the backend can run guests here.
func (b *Backend) Available() bool { return b.HV != nil }

// Require skips the current spec when the backend lacks c, with the
// backend's own reason (it reaches the JUnit <skipped message>).
func (b *Backend) Require(c hv.Cap) {
	GinkgoHelper()
	if err := b.Caps.Require(c); err != nil {
		Skip(err.Error())
	}
}

// Modes are the privilege levels test code runs at, the host's default first.
func (b *Backend) Modes() []guest.Mode {
	d := guest.DefaultMode(b.Caps)
	if d == guest.CPL3 {
		return []guest.Mode{guest.CPL3, guest.CPL0}
	}
	return []guest.Mode{guest.CPL0, guest.CPL3}
}

// NewGuest builds a standard guest for the current spec and frees it when
// the spec ends. Guest PRINTF output goes to the spec's log.
func (b *Backend) NewGuest(cfg guest.Config) *guest.Guest {
	GinkgoHelper()
	if cfg.Output == nil {
		cfg.Output = GinkgoWriter
	}
	g, err := guest.New(b.HV, cfg)
	Expect(err).NotTo(HaveOccurred(), "create guest on %s", b.Name)
	DeferCleanup(func() {
		if err := g.Close(); err != nil {
			AddReportEntry("guest close error", err.Error())
		}
	})
	return g
}

// Area is the specs registered under one area for one guest
// architecture.
type Area struct {
	Area taxonomy.Area
	// Arch is the architecture of the specs' guests: x86-64 (Register)
	// or another (RegisterArch).
	Arch  hv.Arch
	Specs func(b *Backend)
}

type areaKey struct {
	area taxonomy.Area
	arch hv.Arch
}

var (
	areasMu sync.Mutex
	areas   = map[areaKey]Area{}
)

// Register adds an area's specs, whose guests are x86-64; area packages
// call it from init. The function is called once per selected backend
// when the tree is built.
func Register(area taxonomy.Area, specs func(b *Backend)) {
	RegisterArch(area, hv.ArchX86_64, specs)
}

// RegisterArch adds an area's specs whose guests are of architecture
// arch. Those of an architecture other than x86-64 are declared in a
// container named after it and labelled taxonomy.Arch(arch) inside the
// area ("smoke / arm64 / …"), so their names never collide with the x86
// specs'; on a backend whose guests are of another architecture they skip
// with the reason.
func RegisterArch(area taxonomy.Area, arch hv.Arch, specs func(b *Backend)) {
	areasMu.Lock()
	defer areasMu.Unlock()
	k := areaKey{area, arch}
	if _, dup := areas[k]; dup {
		panic("framework: area registered twice: " + area.String() + " (" + string(arch) + ")")
	}
	areas[k] = Area{Area: area, Arch: arch, Specs: specs}
}

// Areas returns the registered areas in a stable order: by area, the
// x86-64 specs of an area before the other architectures'.
func Areas() []Area {
	areasMu.Lock()
	defer areasMu.Unlock()
	out := make([]Area, 0, len(areas))
	for _, a := range areas {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if ai, aj := out[i].Area.String(), out[j].Area.String(); ai != aj {
			return ai < aj
		}
		if xi, xj := out[i].Arch == hv.ArchX86_64, out[j].Arch == hv.ArchX86_64; xi != xj {
			return xi
		}
		return out[i].Arch < out[j].Arch
	})
	return out
}

// ModeLabel is the label of the privilege level test code runs at.
func ModeLabel(m guest.Mode) Labels {
	if m == guest.CPL0 {
		return taxonomy.CPL0
	}
	return taxonomy.CPL3
}

// SpecID is the stable identity of a spec: area, then the container texts
// below the area, then the spec text, joined with " / ". Host profiles
// match deviations against it and reports use it as the testcase name, so
// both sides use the one definition in package reports.
func SpecID(r types.SpecReport) string { return reports.SpecID(r) }

// Build declares the spec tree for the given backends. Call it once,
// before RunSpecs.
func Build(backends []*Backend) {
	all := Areas()
	for _, b := range backends {
		b := b
		Describe(b.Name, taxonomy.Backend(b.Name).Label(), func() {
			BeforeEach(func() { b.beforeSpec() })
			for i := 0; i < len(all); {
				area := all[i].Area
				var regs []Area
				for ; i < len(all) && all[i].Area == area; i++ {
					regs = append(regs, all[i])
				}
				Describe(area.String(), area.Label(), func() {
					for _, a := range regs {
						if a.Arch == hv.ArchX86_64 {
							a.Specs(b)
							continue
						}
						Describe(string(a.Arch), taxonomy.Arch(a.Arch), func() { a.Specs(b) })
					}
				})
			}
		})
	}
}

func (b *Backend) beforeSpec() {
	if !b.Available() {
		Skip(b.Err.Error())
	}
	// A spec runs only where the backend's guests are of its
	// architecture (its arch: label; none is x86-64); elsewhere it skips
	// with the backend's reason.
	want, have := taxonomy.ArchOf(CurrentSpecReport().Labels()), b.Caps.GuestArch()
	switch {
	case want == have:
	case want == hv.ArchX86_64:
		Skip(fmt.Sprintf("the suites run x86 guests; %s's guests here are %s (%v)", b.Name, have, b.Caps.Require(hv.CapLongMode)))
	case want == hv.ArchARM64:
		Skip(fmt.Sprintf("an arm64 spec; %s's guests here are %s (%v)", b.Name, have, b.Caps.Require(hv.CapARM64)))
	default:
		Skip(fmt.Sprintf("a spec of %s guests; %s's guests here are %s", want, b.Name, have))
	}
	if b.Health {
		src := host.SystemSources()
		if b.HealthSources != nil {
			src = *b.HealthSources
		}
		w := src.StartWatch()
		DeferCleanup(func() {
			h := w.Stop()
			if len(h.Lines) > 0 || h.Unavailable != "" || h.NewTaint != 0 {
				AddReportEntry("host health", h.String())
			}
			if h.Failed() {
				Fail(reports.HealthFailurePrefix + h.String())
			}
		})
	}
	b.recordDeviation()
}

// recordDeviation records the host profile's deviation on the current spec
// for the report to judge from the spec's final state (reports.
// DeviationEntry), whatever route the spec fails by, so no spec needs to
// care how it fails. Specs whose deviation harms the host are not run.
func (b *Backend) recordDeviation() {
	d := b.Profile.Lookup(b.Name, SpecID(CurrentSpecReport()))
	if d == nil {
		return
	}
	kd := reports.KnownDeviation{ID: d.ID, Profile: b.Profile.Name, Reason: d.Reason, Run: d.Runs()}
	// Strict ignores expected failures, never the specs that harm the
	// host when run (kernel warnings, taint, livelocks).
	if !kd.Run {
		AddReportEntry(reports.DeviationEntry, kd, ReportEntryVisibilityNever)
		Skip(kd.NotRunMessage())
	}
	if b.Env.Strict {
		return
	}
	AddReportEntry(reports.DeviationEntry, kd, ReportEntryVisibilityFailureOrVerbose)
}

// GuestContext returns a context for guest runs inside a spec: the spec's
// context bounded by d, so a hung guest fails this spec, not the run.
func GuestContext(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	DeferCleanup(cancel)
	return c
}
