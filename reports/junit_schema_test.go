package reports

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// jenkinsSchema is the Jenkins xunit plugin's JUnit schema.
var jenkinsSchema = filepath.Join("..", "fixtures", "junit", "jenkins-xunit-junit-10.xsd")

// jenkinsAttrs are the attributes the schema allows per element, and
// (marked by a leading '!') the ones it requires.
var jenkinsAttrs = map[string][]string{
	"testsuites": {"name", "time", "tests", "failures", "errors"},
	"testsuite": {"!name", "!tests", "!failures", "!errors", "group", "time", "skipped", "timestamp",
		"hostname", "id", "package", "file", "log", "url"},
	"properties": {},
	"property":   {"!name", "!value"},
	"testcase":   {"!name", "time", "classname", "group"},
	"failure":    {"type", "message"},
	"error":      {"type", "message"},
	"skipped":    {"type", "message"},
	"system-out": {},
	"system-err": {},
}

// jenkinsChildren are the elements each element may contain.
var jenkinsChildren = map[string][]string{
	"":           {"testsuites", "testsuite"},
	"testsuites": {"testsuite"},
	"testsuite":  {"testsuite", "properties", "testcase", "system-out", "system-err"},
	"properties": {"property"},
	"testcase":   {"skipped", "error", "failure", "system-out", "system-err"},
}

var surefireTime = regexp.MustCompile(`^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$`)

// checkJenkinsJUnit checks the constraints of the Jenkins schema that
// kvmspec's JUnit could break, without xmllint: elements, where they may
// be, their attributes, and the time format.
func checkJenkinsJUnit(data []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	stack := []string{""}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name, parent := t.Name.Local, stack[len(stack)-1]
			if !slices.Contains(jenkinsChildren[parent], name) {
				return fmt.Errorf("element %s not allowed in %q", name, parent)
			}
			allowed := jenkinsAttrs[name]
			have := map[string]bool{}
			for _, a := range t.Attr {
				have[a.Name.Local] = true
				if !slices.Contains(allowed, a.Name.Local) && !slices.Contains(allowed, "!"+a.Name.Local) {
					return fmt.Errorf("element %s: attribute %s not allowed", name, a.Name.Local)
				}
				if a.Name.Local == "time" && (name == "testsuite" || name == "testsuites") && !surefireTime.MatchString(a.Value) {
					return fmt.Errorf("element %s: time %q is not a SUREFIRE_TIME", name, a.Value)
				}
			}
			for _, a := range allowed {
				if req, ok := strings.CutPrefix(a, "!"); ok && !have[req] {
					return fmt.Errorf("element %s: required attribute %s missing", name, req)
				}
			}
			stack = append(stack, name)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

// schemaRuns are runs whose JUnit must validate: every state, a run with
// parameters and a profile, the incomplete marker, an empty run.
func schemaRuns() map[string]Run {
	withParams := mixedRun()
	withParams.Meta.Params = map[string]string{"dirtylog.mem": "64M", "conformance.random": "10"}
	withParams.Meta.ProfileFile = "board.json"
	withParams.Meta.Deviations = 3
	return map[string]Run{
		"mixed":      mixedRun(),
		"params":     withParams,
		"incomplete": IncompleteRun(Meta{Version: "t", Started: time.Unix(0, 0)}, ""),
		"empty":      {},
	}
}

func TestJUnitValidatesAgainstJenkinsSchema(t *testing.T) {
	xmllint, lintErr := exec.LookPath("xmllint")
	for name, run := range schemaRuns() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := run.WriteJUnit(&buf); err != nil {
				t.Fatal(err)
			}
			if err := checkJenkinsJUnit(buf.Bytes()); err != nil {
				t.Errorf("Jenkins schema constraint: %v", err)
			}
			if lintErr != nil {
				t.Logf("xmllint not installed (make test installs libxml2-utils): checked by the Go constraints only")
				return
			}
			file := filepath.Join(t.TempDir(), "junit.xml")
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(xmllint, "--noout", "--schema", jenkinsSchema, file).CombinedOutput()
			if err != nil {
				t.Errorf("xmllint: %v\n%s", err, out)
			}
		})
	}
}

// The Go check must reject what the schema rejects, or it proves nothing
// where xmllint is missing.
func TestJenkinsCheckRejects(t *testing.T) {
	bad := map[string]string{
		"skipped on testsuites": `<testsuites skipped="1"></testsuites>`,
		"suite without errors":  `<testsuites><testsuite name="a" tests="1" failures="0"></testsuite></testsuites>`,
		"case attribute":        `<testsuites><testsuite name="a" tests="1" failures="0" errors="0"><testcase name="x" status="ok"/></testsuite></testsuites>`,
		"comma time":            `<testsuites time="1,5"></testsuites>`,
		"nested wrongly":        `<testsuites><testcase name="x"/></testsuites>`,
	}
	for name, doc := range bad {
		if err := checkJenkinsJUnit([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDeviationsMarkedByAttribute(t *testing.T) {
	doc := decodeJUnit(t, mixedRun())
	types := map[string]int{}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			if c.Skipped == nil {
				continue
			}
			types[c.Skipped.Type]++
			isDev := strings.HasPrefix(c.Skipped.Message, "known deviation")
			if isDev != strings.HasPrefix(c.Skipped.Type, SkipTypeDeviation) {
				t.Errorf("%s: skipped type %q, message %q", c.Name, c.Skipped.Type, c.Skipped.Message)
			}
		}
	}
	if types[SkipTypeDeviation] == 0 || types[SkipTypeSkipped] == 0 {
		t.Errorf("skip types %v: want deviations and plain skips apart", types)
	}
}

// gomegaError is what Gomega prints for Expect(err).To(Succeed()) with a
// pointer error: the address differs on every run.
func gomegaError(addr string) string {
	return "Expected success, but got an error:\n    <*guest.AssertError | " + addr + ">: \n" +
		"    guest assertion failed at suites/selftest/selftest.go:41: one is not two (values: 0x1 0x2) [vcpu 0]\n" +
		"    {\n        VCPU: 0,\n        Site: {\n            ID: 1,\n            File: \"" + strings.Repeat("/very/long/path", 10) + "\",\n        },\n    }"
}

func TestFailureMessagesStable(t *testing.T) {
	a, b := oneLine(gomegaError("0x3fd3e4340630")), oneLine(gomegaError("0xc000123456"))
	if a != b {
		t.Fatalf("messages differ by the address only:\n%s\n%s", a, b)
	}
	want := "guest assertion failed at suites/selftest/selftest.go:41: one is not two (values: 0x1 0x2) [vcpu 0] (expected success, but got an error)"
	if a != want {
		t.Errorf("summary\n%q, want\n%q", a, want)
	}
	cases := map[string]string{
		"the declared deviation\nExpected\n    <int>: 1\nto equal\n    <int>: 2":                                "the declared deviation Expected 1 to equal 2",
		"ctx\nUnexpected error:\n    <*errors.errorString | 0xc0000a>: \n    boom\n    {s: \"boom\"}\noccurred": "ctx: boom (unexpected error)",
		"A spec timeout occurred": "A spec timeout occurred",
	}
	for in, want := range cases {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
	// The JUnit message is the summary; the body keeps the whole text,
	// addresses removed.
	run := Run{Cases: []Case{{Backend: "emu", Area: "smoke", Name: "x", ID: "smoke/x", State: StateFailed,
		Message: clean(gomegaError("0x3fd3e4340630")), Failure: clean(gomegaError("0x3fd3e4340630"))}}}
	doc := decodeJUnit(t, run)
	f := doc.Suites[0].Cases[0].Failure
	if f.Message != want || !strings.Contains(f.Text, "VCPU: 0") || strings.Contains(f.Text, "0x3fd3e4340630") {
		t.Errorf("failure message %q, body %q", f.Message, f.Text)
	}
}
