package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompareMemslot runs tools/refbench/compare-memslot.sh, which make
// bench-arm64 runs on collect's memslot-go.txt and memslot-c.txt: one run
// each gives the ratio of the medians; repeats give each side's median and
// the median of the back-to-back pair ratios and the ratio of the fastest
// runs; a count only one side has is left out.
func TestCompareMemslot(t *testing.T) {
	for _, tool := range []string{"bash", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	goLine := func(n, create string) string {
		return "BenchmarkUpdate/kvm/slots=" + n + "-2 \t 100\t 1 ns/op\t " + create + " create-ns\t 10 delete-ns\t 20 move-ns\t 1.0 setup-ms\n"
	}
	cLine := func(n, create string) string {
		return "BenchmarkUpdateC/slots=" + n + "\t100\t1 ns/op\t" + create + " create-ns\t10 delete-ns\t10 move-ns\t1.000 setup-ms\n"
	}
	dir := t.TempDir()
	goFile, cFile := filepath.Join(dir, "go.txt"), filepath.Join(dir, "c.txt")
	// slots=8: pairs (110, 100), (400, 200), (90, 100): ratios 1.1, 2.0,
	// 0.9, median 1.1, while the medians are 110 and 100 and the fastest
	// 90 and 100. slots=64: one
	// run each. slots=512: C only.
	os.WriteFile(goFile, []byte("goos: linux\n"+goLine("8", "110")+goLine("8", "400")+goLine("8", "90")+goLine("64", "300")), 0o644)
	os.WriteFile(cFile, []byte(cLine("8", "100")+cLine("8", "200")+cLine("8", "100")+cLine("64", "200")+cLine("512", "5")), 0o644)
	out, err := exec.Command("bash", "../refbench/compare-memslot.sh", goFile, cFile).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
		f := strings.Fields(l)
		rows[f[0]+" "+f[1]] = f[2:]
	}
	for key, want := range map[string][]string{
		"8 create":  {"110", "100", "1.10", "0.90", "3/3"},
		"8 move":    {"20", "10", "2.00", "2.00", "3/3"},
		"64 create": {"300", "200", "1.50", "1.50", "1/1"},
		"64 delete": {"10", "10", "1.00", "1.00", "1/1"},
	} {
		if got := strings.Join(rows[key], " "); got != strings.Join(want, " ") {
			t.Errorf("%s: %q, want %q\n%s", key, got, strings.Join(want, " "), out)
		}
	}
	if len(rows) != 6 {
		t.Errorf("%d rows, want 6 (slots 8 and 64, three ops each):\n%s", len(rows), out)
	}
}
