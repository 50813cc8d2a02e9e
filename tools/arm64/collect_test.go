package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/reports"
)

// guestTar packs testdata/guest (what a real guest sent, trimmed) into a
// gzipped tar, as init.sh does, after edit has changed the files.
func guestTar(t *testing.T, edit func(files map[string][]byte)) string {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir("testdata/guest", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata/guest", p)
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(files)
	}
	return writeTar(t, files)
}

func writeTar(t *testing.T, files map[string][]byte) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "results.tar.gz")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type junitDoc struct {
	Suites []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name      string    `xml:"name,attr"`
			Classname string    `xml:"classname,attr"`
			Skipped   *struct{} `xml:"skipped"`
			Failure   *struct{} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readXML(t *testing.T, p string) junitDoc {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var d junitDoc
	if err := xml.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return d
}

// TestCollect: a guest's results become this host's reports, the suite
// testcases under kvm-arm64/emu-arm64 with their names unchanged, the
// unit tests under arm64/<binary>, and the numbers in the summary.
func TestCollect(t *testing.T) {
	out := filepath.Join(t.TempDir(), "arm64")
	summary, problems, err := collect(guestTar(t, nil), out, "arm64")
	if err != nil || len(problems) > 0 {
		t.Fatalf("collect: %v %v", err, problems)
	}
	for _, want := range []string{
		"kernel 6.12.95+deb12-arm64, /dev/kvm present, init started at 2.1 s",
		"suites           exit 0   283.4 s",
		"unit arm64/hv", "15 passed, 0 failed, 0 skipped",
		"suites: 4 testcases: 2 passed, 0 failed, 2 skipped",
		"0.0 testcases/s",
		"emu-arm64     2 testcases,    2 run",
		"kvm-arm64     2 testcases,    0 run",
		"kvm: --- SKIP: BenchmarkVMCreateDestroy: bench_test.go:59: kvm backend unavailable: kvm: unavailable: x86-64 only so far",
		"kvm: BenchmarkMMIORoundTrip-2 2000 581047 ns/op",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	f, err := os.Open(filepath.Join(out, reports.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	r, err := reports.ReadJSON(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Meta.Backends, ","); got != "kvm-arm64,emu-arm64" {
		t.Errorf("backends %s", got)
	}
	for _, c := range r.Cases {
		if c.Backend != "kvm-arm64" && c.Backend != "emu-arm64" {
			t.Errorf("case %s has backend %q", c.ID, c.Backend)
		}
		if !strings.HasPrefix(c.ID, "smoke/2 vcpus run at once [cpl") {
			t.Errorf("case ID changed: %q", c.ID)
		}
	}
	j := readXML(t, filepath.Join(out, reports.JUnitFile))
	names := map[string]int{}
	for _, s := range j.Suites {
		names[s.Name] += len(s.Cases)
	}
	if names["kvm-arm64/smoke"] != 2 || names["emu-arm64/smoke"] != 2 || len(names) != 2 {
		t.Errorf("junit.xml testsuites %v, want kvm-arm64/smoke and emu-arm64/smoke with 2 cases each", names)
	}
	if _, err := os.Stat(filepath.Join(out, "report.ktap")); err != nil {
		t.Error(err)
	}
	u := readXML(t, filepath.Join(out, "unit.xml"))
	if len(u.Suites) != 1 || u.Suites[0].Name != "arm64/hv" || len(u.Suites[0].Cases) != 15 {
		t.Errorf("unit.xml: %+v", u.Suites)
	}
	if _, err := os.Stat(filepath.Join(out, "guest", "caps.txt")); err != nil {
		t.Errorf("the guest's own files are not kept: %v", err)
	}
}

// TestCollectFails: every way the inside can go wrong fails the stage
// with a message that says which, or (nothing usable came back) an error.
func TestCollectFails(t *testing.T) {
	replace := func(name, old, new string) func(map[string][]byte) {
		return func(f map[string][]byte) { f[name] = bytes.Replace(f[name], []byte(old), []byte(new), 1) }
	}
	failCase := replace("suites/report.json", `"state": "passed"`, `"state": "failed"`)
	cases := []struct {
		name  string
		edit  func(map[string][]byte)
		want  string // in a problem
		isErr bool
	}{
		{"a testcase failed", failCase, "1 arm64 testcases failed: emu-arm64/smoke/2 vcpus run at once", false},
		{"a unit test binary failed", replace("steps.txt", "unit-hv 0", "unit-hv 1"), "guest step unit-hv: exit 1", false},
		{"a unit test failed", func(f map[string][]byte) {
			replace("steps.txt", "unit-hv 0", "unit-hv 1")(f)
			replace("unit-hv.txt", "--- PASS: TestBus ", "--- FAIL: TestBus ")(f)
		}, "arm64/hv: TestBus failed", false},
		{"a step timed out", replace("steps.txt", "caps 0", "caps 124"), "guest step caps: timed out", false},
		{"suites exited 1 without a failed case", replace("steps.txt", "suites 0", "suites 1"), "kvmspec run in the guest exited 1", false},
		{"the guest did not finish", replace("guest.txt", "done 286.95\n", ""), "did not finish its steps", false},
		{"no suite report", func(f map[string][]byte) {
			delete(f, "suites/report.json")
			f["suites.txt"] = []byte("kvmspec run: unknown --param key \"nosuch\"\n\n")
			f["steps.txt"] = bytes.Replace(f["steps.txt"], []byte("suites 0"), []byte("suites 2"), 1)
		}, `no suite report from the guest: kvmspec run exited 2: kvmspec run: unknown --param key "nosuch"`, false},
		{"incomplete suite run", replace("suites/report.json", `"cases": [`, `"incomplete": "interrupted", "cases": [`), "did not finish: interrupted", false},
		{"bad steps line", replace("steps.txt", "caps 0 2.18 2.55", "caps zero"), "steps.txt: bad line", true},
		{"no guest.txt", func(f map[string][]byte) { delete(f, "guest.txt") }, "guest.txt", true},
		{"path outside", func(f map[string][]byte) { f["../evil"] = []byte("x") }, "leaves the results directory", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "arm64")
			_, problems, err := collect(guestTar(t, c.edit), out, "arm64")
			if c.isErr {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("err %v, want one saying %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(problems, "\n"), c.want) {
				t.Errorf("problems %q, want one saying %q", problems, c.want)
			}
		})
	}
}

// TestCollectCutShort: a tar the guest did not finish sending is an
// error that says so, as is no tar at all.
func TestCollectCutShort(t *testing.T) {
	p := guestTar(t, nil)
	data, _ := os.ReadFile(p)
	cut := filepath.Join(t.TempDir(), "cut.tar.gz")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	if _, _, err := collect(cut, filepath.Join(t.TempDir(), "o"), "arm64"); err == nil || !strings.Contains(err.Error(), "cut short") && !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("half a tar: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	if _, _, err := collect(empty, filepath.Join(t.TempDir(), "o"), "arm64"); err == nil || !strings.Contains(err.Error(), "sent nothing") {
		t.Errorf("empty file: %v", err)
	}
}

// TestCollectCommand: the exit status make test-arm64 goes by.
func TestCollectCommand(t *testing.T) {
	var so, se bytes.Buffer
	if code := run([]string{"collect", "-in", guestTar(t, nil), "-out", filepath.Join(t.TempDir(), "a")}, &so, &se); code != 0 {
		t.Errorf("good results: exit %d: %s %s", code, so.String(), se.String())
	}
	so.Reset()
	bad := guestTar(t, func(f map[string][]byte) {
		f["suites/report.json"] = bytes.Replace(f["suites/report.json"], []byte(`"state": "passed"`), []byte(`"state": "failed"`), 1)
	})
	if code := run([]string{"collect", "-in", bad, "-out", filepath.Join(t.TempDir(), "b")}, &so, &se); code != 1 || !strings.Contains(so.String(), "FAIL: 1 arm64 testcases failed") {
		t.Errorf("a failed case: exit %d, output %s", code, so.String())
	}
	if code := run([]string{"collect", "-in", bad}, &so, &se); code != 1 || !strings.Contains(se.String(), "usage") {
		t.Errorf("no -out: exit %d, stderr %s", code, se.String())
	}
}

// TestCollectMemslotBench: make bench-arm64's guest (no suites, one
// memslot-c-<n> and memslot-go-<n> step per slot count) gives
// memslot-go.txt and memslot-c.txt, compare-memslot.sh's inputs, with the
// benchmark lines of every step in order; a step that timed out fails the
// stage, and the missing suite report does not.
func TestCollectMemslotBench(t *testing.T) {
	goOut := func(n, create string) string {
		return "goos: linux\ngoarch: arm64\npkg: github.com/kvmspec/kvmspec/suites/memslot\n" +
			"BenchmarkUpdate/kvm/slots=" + n + "-2         \t     100\t   3000000 ns/op\t  " + create +
			" create-ns\t   900000 delete-ns\t   1000000 move-ns\t  12.5 setup-ms\nPASS\n"
	}
	files := map[string][]byte{
		"guest.txt": []byte("boot 2.1\nkernel 6.12.95+deb12-arm64\nkvm present\nsuites off\ndone 60.5\n"),
		"steps.txt": []byte("caps 0 2.2 2.5\nmemslot-c-8 0 2.6 3.6\nmemslot-go-8 0 3.6 4.9\n" +
			"memslot-c-64 0 4.9 6.0\nmemslot-go-64 0 6.0 7.5\nmemslot-c-max 124 7.5 60.0\n"),
		"caps.txt":          []byte("caps\n"),
		"memslot-c-8.txt":   []byte("BenchmarkUpdateC/slots=8\t100\t2900000 ns/op\t950000 create-ns\t880000 delete-ns\t990000 move-ns\t1.000 setup-ms\n"),
		"memslot-go-8.txt":  []byte(goOut("8", "1000000")),
		"memslot-c-64.txt":  []byte("refbench-memslot: noise\nBenchmarkUpdateC/slots=64\t100\t3000000 ns/op\t960000 create-ns\t890000 delete-ns\t995000 move-ns\t8.000 setup-ms\n"),
		"memslot-go-64.txt": []byte(goOut("64", "1010000")),
		"memslot-c-max.txt": []byte(""),
	}
	out := filepath.Join(t.TempDir(), "arm64")
	summary, problems, err := collect(writeTar(t, files), out, "arm64")
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "guest step memslot-c-max: timed out") {
		t.Errorf("problems %q, want only the timed-out step", problems)
	}
	for _, want := range []string{
		"suites: not run (SUITES=0)",
		"memslot go: BenchmarkUpdate/kvm/slots=8-2 100 3000000 ns/op 1000000 create-ns",
		"memslot c: BenchmarkUpdateC/slots=64 100 3000000 ns/op 960000 create-ns",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	for lang, want := range map[string][]string{
		"go": {"BenchmarkUpdate/kvm/slots=8-2 ", "BenchmarkUpdate/kvm/slots=64-2 "},
		"c":  {"BenchmarkUpdateC/slots=8\t", "BenchmarkUpdateC/slots=64\t"},
	} {
		data, err := os.ReadFile(filepath.Join(out, "memslot-"+lang+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) != len(want) {
			t.Errorf("memslot-%s.txt has %d lines, want %d:\n%s", lang, len(lines), len(want), data)
			continue
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], w) {
				t.Errorf("memslot-%s.txt line %d = %q, want it to start with %q", lang, i, lines[i], w)
			}
		}
	}
	// The ordinary stage writes neither file.
	plain := filepath.Join(t.TempDir(), "plain")
	if _, _, err := collect(guestTar(t, nil), plain, "arm64"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(plain, "memslot-go.txt")); err == nil {
		t.Error("a guest without memslot steps gave memslot-go.txt")
	}
}
