package dirtylog

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/suites/framework"
)

// Parameters (kvmspec run --param name=value). Defaults keep a default run
// of the whole area within seconds per backend; nightly runs raise them.
const (
	// ParamIterations is the number of iterations of the concurrent check.
	ParamIterations = "dirtylog.iterations"
	// ParamInterval is how long the guest writes per iteration (a Go
	// duration, or milliseconds as a plain number).
	ParamInterval = "dirtylog.interval"
	// ParamMem is the power-of-two part of the concurrent check's slot;
	// three pages are added so the slot is not a multiple of 64 pages.
	ParamMem = "dirtylog.mem"
	// ParamRing is the dirty ring size in bytes for the concurrent check
	// (default: the smallest ring the backend accepts, from 4 KiB up).
	ParamRing = "dirtylog.ring"
	// ParamRingReserve is how many entries below the ring size the
	// ring-full exit comes: KVM_DIRTY_RING_RSVD_ENTRIES (64), plus the
	// PML buffer (512) on VMX hosts that use PML.
	ParamRingReserve = "dirtylog.ring.reserve"
	// ParamSeed seeds the guest's random writes (default: the run's seed).
	ParamSeed = "dirtylog.seed"
	// ParamVCPUs is the number of vCPUs of the several-rings spec.
	ParamVCPUs = "dirtylog.vcpus"
	// ParamPerfMem is the memory the perf specs dirty (nightly: 256M).
	ParamPerfMem = "dirtylog.perf.mem"
	// ParamPerfIterations is the number of dirty passes the perf specs time.
	ParamPerfIterations = "dirtylog.perf.iterations"
	// ParamPerfVCPUs is the number of vCPUs the perf specs dirty with.
	ParamPerfVCPUs = "dirtylog.perf.vcpus"
	// ParamPerfRing is the dirty ring size in bytes of the dirty-ring perf spec.
	ParamPerfRing = "dirtylog.perf.ring"
)

// parseSize reads a byte count: a plain number, or one with a K, M or G
// suffix (binary units; "MiB" and "MB" are read the same way).
func parseSize(s string) (uint64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := uint64(1)
	switch {
	case strings.HasSuffix(t, "K"):
		mult = 1 << 10
	case strings.HasSuffix(t, "M"):
		mult = 1 << 20
	case strings.HasSuffix(t, "G"):
		mult = 1 << 30
	}
	if mult != 1 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseUint(t, 0, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes such as 4096, 64M or 1G", s)
	}
	if n > (1<<63)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// parseDuration reads a Go duration, or a plain number of milliseconds as
// the kernel test's -I flag takes it.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32); err == nil && n > 0 {
		return time.Duration(n) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration %q: want a positive Go duration such as 10ms, or milliseconds", s)
	}
	return d, nil
}

func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("count %q: want a positive integer", s)
	}
	return n, nil
}

// params reads the area's parameters for one spec. A malformed value is
// an error of the run's configuration, reported by the spec that reads it.
type params struct {
	env *framework.Env
}

func (p params) raw(name, def string) (string, bool) {
	if p.env == nil {
		return def, false
	}
	v, ok := p.env.Params[name]
	if !ok {
		return def, false
	}
	return v, true
}

func (p params) size(name string, def uint64) (uint64, error) {
	v, ok := p.raw(name, "")
	if !ok {
		return def, nil
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, fmt.Errorf("--param %s: %w", name, err)
	}
	return n, nil
}

func (p params) count(name string, def int) (int, error) {
	v, ok := p.raw(name, "")
	if !ok {
		return def, nil
	}
	n, err := parseCount(v)
	if err != nil {
		return 0, fmt.Errorf("--param %s: %w", name, err)
	}
	return n, nil
}

func (p params) duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := p.raw(name, "")
	if !ok {
		return def, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("--param %s: %w", name, err)
	}
	return d, nil
}

// seed is the guest PRNG's seed: the parameter, else the run's seed.
func (p params) seed() (int64, error) {
	v, ok := p.raw(ParamSeed, "")
	if !ok {
		if p.env == nil {
			return 1, nil
		}
		return p.env.Seed, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
	if err != nil {
		return 0, fmt.Errorf("--param %s: %q is not an integer", ParamSeed, v)
	}
	return n, nil
}
