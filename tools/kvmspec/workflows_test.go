package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func workflow(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", ".github", "workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// in checks that the steps appear in order in the workflow text.
func inOrder(t *testing.T, name, text string, steps ...string) {
	t.Helper()
	pos := 0
	for _, s := range steps {
		i := strings.Index(text[pos:], s)
		if i < 0 {
			t.Errorf("%s: %q missing, or before the previous step", name, s)
			return
		}
		pos += i + len(s)
	}
}

// The nightly gate compares with the previous night only if something
// restores that night's report before the comparison and saves tonight's
// for the next: without both, `report --baseline` never ran.
func TestNightlyRestoresItsBaseline(t *testing.T) {
	w := workflow(t, "nightly.yml")
	inOrder(t, "nightly.yml", w,
		"uses: actions/cache/restore@", "path: reports/baseline", "restore-keys: kvmspec-nightly-",
		"bin/kvmspec run ", "--report-dir reports/out/nightly",
		"--baseline reports/baseline/report.json reports/out/nightly/report.json",
		"cp reports/out/nightly/report.json reports/baseline/report.json",
		"uses: actions/cache/save@", "path: reports/baseline", "key: kvmspec-nightly-")
	if !strings.Contains(w, `grep -q '"incomplete"'`) {
		t.Error("nightly.yml saves an incomplete report as the next baseline")
	}
}

// CI publishes the JUnit results and a job summary, whatever the outcome.
func TestCIPublishesResults(t *testing.T) {
	w := workflow(t, "ci.yml")
	inOrder(t, "ci.yml", w, "make test", "if: always()", "action-junit-report@", "reports/out/merged/junit.xml",
		"if: always()", "GITHUB_STEP_SUMMARY", "if: always()", "upload-artifact@", "path: reports/out/merged/")
	if !strings.Contains(w, "checks: write") {
		t.Error("ci.yml cannot create the JUnit check run without checks: write")
	}
}

// The nightly merges its x86 and arm64 reports after both ran, whatever
// their outcome.
func TestNightlyMergesPlatforms(t *testing.T) {
	w := workflow(t, "nightly.yml")
	inOrder(t, "nightly.yml", w, "--report-dir reports/out/nightly", "make test-arm64", "if: always()",
		"bin/kvmspec merge --platforms reports/out/merged reports/out/nightly", "upload-artifact@", "path: reports/out/")
}
