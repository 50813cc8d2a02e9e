package suites

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEParamTable: the README's parameter table is the one
// ParamTable generates from Params, so the two cannot drift apart.
func TestREADMEParamTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), ParamTable()) {
		t.Errorf("README.md's parameter table differs from suites.Params; replace it by:\n%s", ParamTable())
	}
}

func TestValidateParams(t *testing.T) {
	cases := []struct {
		key, value string
		ok         bool
	}{
		{"conformance.random", "10", true},
		{"conformance.random", "0", false},
		{"conformance.random", "ten", false},
		{"pagefault.delay_us", "0", true},
		{"pagefault.delay_us", "-1", false},
		{"dirtylog.mem", "64M", true},
		{"dirtylog.mem", "64MiB", true},
		{"dirtylog.mem", "4096", true},
		{"dirtylog.mem", "0", false},
		{"dirtylog.mem", "64X", false},
		{"dirtylog.mem", "99999999999G", false},
		{"dirtylog.interval", "10ms", true},
		{"dirtylog.interval", "25", true},
		{"dirtylog.interval", "0s", false},
		{"dirtylog.interval", "-1s", false},
		{"dirtylog.seed", "0x10", true},
		{"dirtylog.seed", "-3", true},
		{"dirtylog.seed", "x", false},
		{"dirtylog.memory", "1", false},
	}
	for _, c := range cases {
		err := ValidateParams(map[string]string{c.key: c.value})
		if (err == nil) != c.ok {
			t.Errorf("%s=%s: %v, want ok=%v", c.key, c.value, err, c.ok)
		}
		if err != nil {
			if _, usage := err.(*UsageError); !usage || !strings.Contains(err.Error(), c.key) {
				t.Errorf("%s=%s: %v is not a usage error naming the key", c.key, c.value, err)
			}
		}
	}
	for _, p := range Params {
		if checkParam(p.Kind, "1") != nil && p.Kind != KindSize {
			t.Errorf("%s: kind %q refuses 1", p.Key, p.Kind)
		}
	}
}
