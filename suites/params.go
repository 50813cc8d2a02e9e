package suites

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/suites/dirtylog"
)

// ParamKind is the type of a --param value; ValidateParams checks each
// value against its kind before any spec runs, so a typo fails the run at
// once instead of failing the specs that read it half an hour in.
type ParamKind string

// Parameter kinds, each as the specs read it.
const (
	// KindCount is a positive integer.
	KindCount ParamKind = "count"
	// KindNonNegative is an integer ≥ 0.
	KindNonNegative ParamKind = "count ≥ 0"
	// KindInt is any integer (decimal, or 0x… hex).
	KindInt ParamKind = "integer"
	// KindSize is a positive byte count with an optional K, M or G suffix.
	KindSize ParamKind = "size"
	// KindDuration is a positive Go duration, or a number of milliseconds.
	KindDuration ParamKind = "duration"
)

// Param declares one --param key: the schema `kvmspec run` validates
// against, `kvmspec help run` prints and the README's table is checked
// against (TestREADMEParamTable).
type Param struct {
	Key     string
	Kind    ParamKind
	Default string // as the spec reads it when the key is absent
	Meaning string
}

// Params are the declared --param keys, in the order the README lists
// them. The dirtylog area exports its key names; the others are spelled
// here as their suites spell them (suites/conformance, suites/pagefault).
var Params = []Param{
	{"conformance.random", KindCount, "500", "random programs per run"},
	{"conformance.states", KindCount, "4", "random initial states per curated program"},
	{dirtylog.ParamIterations, KindCount, "32", "iterations of the concurrent writer/harvester check"},
	{dirtylog.ParamInterval, KindDuration, "10ms", "how long the guest writes per iteration"},
	{dirtylog.ParamMem, KindSize, "16M", "slot size of the concurrent check (plus 3 pages)"},
	{dirtylog.ParamRing, KindSize, "smallest ring", "dirty ring size in bytes of the concurrent check"},
	{dirtylog.ParamRingReserve, KindCount, "64", "entries below the ring size where the full exit comes (576 on VMX hosts with PML)"},
	{dirtylog.ParamSeed, KindInt, "run seed", "seed of the guest's random writes"},
	{dirtylog.ParamVCPUs, KindCount, "2", "vCPUs of the several-rings spec"},
	{dirtylog.ParamPerfMem, KindSize, "64M", "memory the perf specs dirty (nightly: 256M)"},
	{dirtylog.ParamPerfVCPUs, KindCount, "1", "vCPUs the perf specs dirty with"},
	{dirtylog.ParamPerfIterations, KindCount, "3", "dirty passes the perf specs time"},
	{dirtylog.ParamPerfRing, KindSize, "64K", "dirty ring size of the dirty-ring perf spec"},
	{"pagefault.pages", KindNonNegative, "512", "pages per vCPU of the demand_paging perf spec"},
	{"pagefault.samples", KindNonNegative, "5", "runs per vCPU count of the demand_paging perf spec"},
	{"pagefault.delay_us", KindNonNegative, "0", "handler delay in µs of the demand_paging perf spec"},
}

// LookupParam returns the declaration of key.
func LookupParam(key string) (Param, bool) {
	for _, p := range Params {
		if p.Key == key {
			return p, true
		}
	}
	return Param{}, false
}

// ValidateParams checks every key against Params and every value against
// its kind, in key order so the first error is the same on every run.
func ValidateParams(params map[string]string) error {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, ok := LookupParam(k)
		if !ok {
			return &UsageError{Msg: fmt.Sprintf("unknown --param %q (known: %s; see kvmspec help run)", k, paramKeys())}
		}
		if err := p.Kind.check(params[k]); err != nil {
			return &UsageError{Msg: fmt.Sprintf("bad --param %s=%q: %v", k, params[k], err)}
		}
	}
	return nil
}

func paramKeys() string {
	keys := make([]string, len(Params))
	for i, p := range Params {
		keys[i] = p.Key
	}
	return strings.Join(keys, ", ")
}

// check accepts what the specs' own parsers accept, and nothing else.
func (k ParamKind) check(v string) error {
	v = strings.TrimSpace(v)
	switch k {
	case KindCount, KindNonNegative:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || (k == KindCount && n == 0) {
			return fmt.Errorf("want a %s", k.describe())
		}
	case KindInt:
		if _, err := strconv.ParseInt(v, 0, 64); err != nil {
			return fmt.Errorf("want an integer")
		}
	case KindSize:
		if _, err := sizeBytes(v); err != nil {
			return err
		}
	case KindDuration:
		if n, err := strconv.ParseUint(v, 10, 32); err == nil && n > 0 {
			return nil
		}
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			return fmt.Errorf("want a positive duration such as 10ms, or milliseconds")
		}
	default:
		return fmt.Errorf("parameter kind %q has no check", k)
	}
	return nil
}

func (k ParamKind) describe() string {
	switch k {
	case KindCount:
		return "positive integer"
	case KindNonNegative:
		return "non-negative integer"
	}
	return string(k)
}

// sizeBytes reads 4096, 64K, 64M, 1G (binary units, an optional "iB"/"B").
func sizeBytes(v string) (uint64, error) {
	num := strings.ToUpper(v)
	num = strings.TrimSuffix(num, "B")
	num = strings.TrimSuffix(num, "I")
	shift := map[byte]uint{'K': 10, 'M': 20, 'G': 30}
	var sh uint
	if n := len(num); n > 0 {
		if s, ok := shift[num[n-1]]; ok {
			sh, num = s, num[:n-1]
		}
	}
	n, err := strconv.ParseUint(num, 0, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("want a positive size such as 4096, 64M or 1G")
	}
	if n > (1<<63)>>sh {
		return 0, fmt.Errorf("size too large")
	}
	return n << sh, nil
}

// ParamTable renders Params as the README's Markdown table.
func ParamTable() string {
	var b strings.Builder
	b.WriteString("| key | kind | default | meaning |\n| --- | --- | --- | --- |\n")
	for _, p := range Params {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.Key, p.Kind, p.Default, p.Meaning)
	}
	return b.String()
}
