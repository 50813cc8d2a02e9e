package kvm

import (
	"strconv"
	"testing"
)

// Every arm64 constant and layout of the Go tables equals the value the
// golden file records from the arm64 headers, and the file has no entry
// the tables lack (TestARM64UAPIGolden proves the file on hosts with the
// cross tools).
func TestARM64TablesMatchGolden(t *testing.T) {
	_, lines := readARM64Golden(t)
	golden := map[string]arm64Golden{}
	for _, l := range lines {
		golden[l.name] = l
	}
	seen := map[string]bool{}
	check := func(name string, got uint64, cexpr string) {
		seen[name] = true
		g, ok := golden[name]
		if !ok {
			t.Errorf("%s: not in %s (add a line with its C expression and run TestARM64UAPIGolden -update-arm64-golden)", name, arm64GoldenPath)
			return
		}
		if cexpr != "" && cexpr != g.cexpr {
			t.Errorf("%s: C expression %q here, %q in %s", name, cexpr, g.cexpr, arm64GoldenPath)
		}
		want, err := strconv.ParseUint(g.value, 10, 64)
		if err != nil {
			t.Errorf("%s: golden value %q", name, g.value)
			return
		}
		if got != want {
			t.Errorf("%s = %#x in Go, %#x in the arm64 headers", name, got, want)
		}
	}
	for _, e := range arm64IoctlTable {
		check(e.name, e.value, "")
	}
	for _, e := range arm64LayoutTable {
		check(e.name, e.goValue, e.cexpr)
	}
	for _, l := range lines {
		if !seen[l.name] {
			t.Errorf("%s: in %s but in no arm64 Go table", l.name, arm64GoldenPath)
		}
	}
}
