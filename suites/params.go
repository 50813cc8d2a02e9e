package suites

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/suites/framework"
)

// ParamKind and Param are the framework's: each area declares its keys
// with framework.DeclareParams beside its Register call.
type (
	ParamKind = framework.ParamKind
	Param     = framework.Param
)

// Parameter kinds.
const (
	KindCount       = framework.KindCount
	KindNonNegative = framework.KindNonNegative
	KindInt         = framework.KindInt
	KindSize        = framework.KindSize
	KindDuration    = framework.KindDuration
	KindDelay       = framework.KindDelay
	KindCounts      = framework.KindCounts
)

// Params are the declared --param keys of every registered area, in the
// order the README lists them. The suites package imports every area, so
// their declarations are in when this is initialised.
var Params = framework.Params()

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
		if err := checkParam(p.Kind, params[k]); err != nil {
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
func checkParam(k ParamKind, v string) error {
	v = strings.TrimSpace(v)
	switch k {
	case KindCount, KindNonNegative:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || (k == KindCount && n == 0) {
			return fmt.Errorf("want a %s", describeKind(k))
		}
	case KindInt:
		if _, err := strconv.ParseInt(v, 0, 64); err != nil {
			return fmt.Errorf("want an integer")
		}
	case KindSize:
		if _, err := sizeBytes(v); err != nil {
			return err
		}
	case KindDelay:
		if _, err := strconv.ParseUint(v, 10, 32); err == nil {
			return nil
		}
		if d, err := time.ParseDuration(v); err != nil || d < 0 {
			return fmt.Errorf("want a duration such as 0, 200ms or 5s, or milliseconds")
		}
	case KindCounts:
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if n, err := strconv.Atoi(e); e != "max" && (err != nil || n < 1) {
				return fmt.Errorf("want positive integers or max, separated by commas")
			}
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

func describeKind(k ParamKind) string {
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
