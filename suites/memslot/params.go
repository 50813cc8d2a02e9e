package memslot

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/suites/framework"
)

// sweepCounts reads a comma-separated list of slot counts; "" is the
// default sweep of the perf specs: 1, 8, 64, 512, 4096 and max-1 (slot 0
// holds the guest's code, the rest is the test area), without the ones
// above max-1. "max" in the list stands for max-1 too.
func sweepCounts(s string, max int) ([]int, error) {
	if s == "" {
		s = "1,8,64,512,4096,max"
	}
	top := max - 1
	seen := map[int]bool{}
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		n := top
		if f != "max" {
			v, err := strconv.Atoi(f)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("slot count %q: want a positive integer or max", f)
			}
			if v > top {
				continue
			}
			n = v
		}
		if n >= 1 && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("slot counts %q: none in [1, %d]", s, top)
	}
	sort.Ints(out)
	return out, nil
}

// Parameters (kvmspec run --param name=value). The defaults keep the whole
// area within a minute per backend on a small machine; nightly runs raise
// the perf ones to the kernel test's values.
const (
	// ParamPerfSlots is the sweep of test-area slot counts, comma
	// separated; "max" is the backend's maximum - 1.
	ParamPerfSlots = "memslot.perf.slots"
	// ParamPerfTime is how long each run of a perf test loops (the
	// kernel's -l, 5 s there).
	ParamPerfTime = "memslot.perf.time"
	// ParamPerfRuns is the number of runs per test and slot count (-r).
	ParamPerfRuns = "memslot.perf.runs"
	// ParamPerfMem is the test area of the move tests (MEM_SIZE, 512M in
	// the kernel as here: then even the maximum slot count leaves the
	// moved slot the 96 KiB the active move needs).
	ParamPerfMem = "memslot.perf.mem"
	// ParamPerfRWMem is the test area of the RW test, which touches all of
	// it twice per iteration (MEM_SIZE in the kernel).
	ParamPerfRWMem = "memslot.perf.rw.mem"
	// ParamPerfMapMem and ParamPerfUnmapMem are the areas of the map and
	// unmap tests (MEM_TEST_MAP_SIZE 32M, MEM_TEST_UNMAP_SIZE 128M).
	ParamPerfMapMem   = "memslot.perf.map.mem"
	ParamPerfUnmapMem = "memslot.perf.unmap.mem"
	// ParamPerfSetupBudget skips a slot count whose slot setup takes
	// longer than this; later tests skip it without trying.
	ParamPerfSetupBudget = "memslot.perf.setup-budget"
	// ParamStressIterations is the number of add+delete pairs (-i).
	ParamStressIterations = "memslot.stress.iterations"
	// ParamStressVCPUs is the number of writing vCPUs (-v).
	ParamStressVCPUs = "memslot.stress.vcpus"
	// ParamStressMem is the memory each vCPU writes per pass (-b).
	ParamStressMem = "memslot.stress.mem"
	// ParamStressDelay is the pause between two pairs (-d).
	ParamStressDelay = "memslot.stress.delay"
)

// params reads the area's parameters; a malformed value fails the spec
// that reads it, naming the parameter.
type params struct {
	env *framework.Env
}

func (p params) get(name string) (string, bool) {
	if p.env == nil {
		return "", false
	}
	v, ok := p.env.Params[name]
	return v, ok
}

func (p params) count(name string, def int) (int, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--param %s=%s: want a positive integer", name, v)
	}
	return n, nil
}

func (p params) duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	// A bare number is milliseconds, as the CLI's check of the kind says.
	if ms, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("--param %s=%s: want a duration such as 200ms or 5s", name, v)
	}
	return d, nil
}

// sizeUnits are the suffixes size parameters take (binary units).
var sizeUnits = map[byte]uint64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}

func (p params) size(name string, def uint64) (uint64, error) {
	v, ok := p.get(name)
	if !ok {
		return def, nil
	}
	s := strings.ToUpper(strings.TrimSpace(v))
	mult := uint64(1)
	if s != "" {
		if m, ok := sizeUnits[s[len(s)-1]]; ok {
			mult, s = m, s[:len(s)-1]
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > (1<<48)/mult {
		return 0, fmt.Errorf("--param %s=%s: want a size such as 4096, 64M or 1G", name, v)
	}
	return n * mult, nil
}
