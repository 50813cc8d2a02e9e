package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// `kvmspec run --ktap` prints exactly report.ktap on stdout, as kselftest
// runners parse it, with one leaf result per junit.xml testcase, and
// everything else (Ginkgo's output, the summary) on stderr.
func TestRunKTAPOnStdout(t *testing.T) {
	dir := t.TempDir()
	r := kvmspec(t, nil, runArgs(dir, "--ktap", "--seed", "77")...)
	if r.code != exitOK {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	file, err := os.ReadFile(filepath.Join(dir, "report.ktap"))
	if err != nil {
		t.Fatal(err)
	}
	if r.stdout != string(file) {
		t.Errorf("stdout is not report.ktap:\nstdout:\n%s\nreport.ktap:\n%s", r.stdout, file)
	}
	if !strings.HasPrefix(r.stdout, "KTAP version 1\n# kvmspec ") || !strings.Contains(r.stdout, "seed 77") {
		t.Errorf("stdout does not start as KTAP:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "seed 77") {
		t.Errorf("the summary is not on stderr:\n%s", r.stderr)
	}
	leaves := regexp.MustCompile(`(?m)^ {8}(ok|not ok) [0-9]+ `).FindAllString(r.stdout, -1)
	if j := readJUnit(t, dir); len(leaves) != j.Tests || j.Tests == 0 {
		t.Errorf("%d KTAP leaf results, junit.xml has %d testcases\n%s", len(leaves), j.Tests, r.stdout)
	}
	if !regexp.MustCompile(`(?m)^1\.\.1\nKTAP|^1\.\.1$`).MatchString(r.stdout) || !strings.Contains(r.stdout, "\nok 1 emu\n") {
		t.Errorf("want one top-level test, emu, passing:\n%s", r.stdout)
	}
}
