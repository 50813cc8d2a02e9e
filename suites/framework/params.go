package framework

import (
	"sort"
	"sync"

	"github.com/kvmspec/kvmspec/suites/taxonomy"
)

// ParamKind is the type of a --param value; the CLI checks each value
// against its kind before any spec runs, so a typo fails the run at once
// instead of failing the specs that read it half an hour in.
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
	// KindDelay is a Go duration ≥ 0, or a number of milliseconds.
	KindDelay ParamKind = "duration ≥ 0"
	// KindCounts is a comma-separated list of positive integers, where
	// "max" stands for the backend's maximum.
	KindCounts ParamKind = "counts"
)

// Param declares one --param key: the schema `kvmspec run` validates
// against, `kvmspec help run` prints and the README's table is checked
// against.
type Param struct {
	Key     string
	Kind    ParamKind
	Default string // as the spec reads it when the key is absent
	Meaning string
}

type areaParams struct {
	area   taxonomy.Area
	params []Param
}

var (
	paramsMu sync.Mutex
	declared []areaParams
)

// DeclareParams records the --param keys an area reads; area packages
// call it from init, beside Register, so the schema lives with the code
// that reads the keys.
func DeclareParams(area taxonomy.Area, ps ...Param) {
	paramsMu.Lock()
	defer paramsMu.Unlock()
	for i := range declared {
		if declared[i].area == area {
			declared[i].params = append(declared[i].params, ps...)
			return
		}
	}
	declared = append(declared, areaParams{area, append([]Param(nil), ps...)})
}

// Params returns every declared key, areas in taxonomy order, each area's
// keys in declaration order.
func Params() []Param {
	paramsMu.Lock()
	defer paramsMu.Unlock()
	order := map[taxonomy.Area]int{}
	for i, a := range taxonomy.Areas() {
		order[a] = i
	}
	ds := append([]areaParams(nil), declared...)
	sort.SliceStable(ds, func(i, j int) bool { return order[ds[i].area] < order[ds[j].area] })
	var out []Param
	for _, d := range ds {
		out = append(out, d.params...)
	}
	return out
}
