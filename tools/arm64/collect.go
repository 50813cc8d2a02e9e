package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jstemmer/go-junit-report/v2/gtr"
	"github.com/jstemmer/go-junit-report/v2/junit"
	"github.com/jstemmer/go-junit-report/v2/parser/gotest"

	"github.com/kvmspec/kvmspec/reports"
)

// maxResults bounds what the guest may send back (the tar, unpacked):
// the guest is the system under test, not a trusted source.
const maxResults = 512 << 20

// step is one line of the guest's steps.txt: a command init.sh ran.
type step struct {
	Name       string
	RC         int
	Start, End float64 // guest uptime, seconds
}

func (s step) seconds() float64 { return s.End - s.Start }

// guestResult is what the guest sent back, read from DIR/guest.
type guestResult struct {
	Boot, Done float64 // uptime when init started and when it finished (0: never)
	Kernel     string
	KVM        string // "present" or "missing"
	SuitesOff  bool   // init.sh was told not to run the suites (make bench-arm64)
	Steps      []step
}

func cmdCollect(args []string, stdout io.Writer) (failed bool, err error) {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	in := fs.String("in", "", "the gzipped tar the guest sent through the kvmspec.out port")
	out := fs.String("out", "", "report directory to write (e.g. reports/out/arm64)")
	platform := fs.String("platform", "arm64", "suffix of the backend names: kvm → kvm-<platform>")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if *in == "" || *out == "" || fs.NArg() != 0 {
		return false, fmt.Errorf("%w: collect -in RESULTS.tar.gz -out DIR [-platform arm64]", errUsage)
	}
	s, problems, err := collect(*in, *out, *platform)
	if err != nil {
		return false, err
	}
	fmt.Fprint(stdout, s)
	for _, p := range problems {
		fmt.Fprintln(stdout, "FAIL:", p)
	}
	return len(problems) > 0, nil
}

// collect unpacks in into out/guest and writes out's reports. It returns
// the stage's summary and the problems that fail it; err is for a stage
// that brought back nothing usable.
func collect(in, out, platform string) (summary string, problems []string, err error) {
	guestDir := filepath.Join(out, "guest")
	if err := os.RemoveAll(guestDir); err != nil {
		return "", nil, err
	}
	if err := untar(in, guestDir); err != nil {
		return "", nil, fmt.Errorf("results from the guest: %w", err)
	}
	g, err := readGuest(guestDir)
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "arm64 guest: kernel %s, /dev/kvm %s, init started at %.1f s of uptime\n", g.Kernel, g.KVM, g.Boot)
	if g.Done == 0 {
		problems = append(problems, "the guest did not finish its steps (see "+filepath.Join(guestDir, "steps.txt")+")")
	}
	for _, s := range g.Steps {
		fmt.Fprintf(&b, "  %-16s exit %d  %6.1f s\n", s.Name, s.RC, s.seconds())
		if s.RC != 0 && s.Name != "suites" {
			why := fmt.Sprintf("exit %d", s.RC)
			if s.RC == 124 || s.RC == 143 {
				why = "timed out"
			}
			problems = append(problems, fmt.Sprintf("guest step %s: %s (log: %s)", s.Name, why, filepath.Join(guestDir, s.Name+".txt")))
		}
	}

	// The unit tests: one JUnit file, packages named arm64/<binary>.
	units, err := unitReport(guestDir, g, platform)
	if err != nil {
		return "", nil, err
	}
	if len(units.Packages) > 0 {
		ts := junit.CreateFromReport(units, "")
		var x bytes.Buffer
		if err := ts.WriteXML(&x); err != nil {
			return "", nil, err
		}
		if err := os.WriteFile(filepath.Join(out, "unit.xml"), x.Bytes(), 0o644); err != nil {
			return "", nil, err
		}
		for _, p := range units.Packages {
			var pass, skip int
			var failed []string
			for _, t := range p.Tests {
				switch t.Result {
				case gtr.Pass:
					pass++
				case gtr.Skip:
					skip++
				default:
					failed = append(failed, t.Name)
				}
			}
			fmt.Fprintf(&b, "  unit %-22s %d passed, %d failed, %d skipped\n", p.Name, pass, len(failed), skip)
			if len(failed) > 0 {
				problems = append(problems, fmt.Sprintf("%s: %s failed", p.Name, strings.Join(first(failed, 10), ", ")))
			}
		}
	}
	for _, l := range benchLines(guestDir, g) {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	ms, err := memslotBench(guestDir, g, out)
	if err != nil {
		return "", nil, err
	}
	for _, l := range ms {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	if g.SuitesOff {
		b.WriteString("  suites: not run (SUITES=0)\n")
		return b.String(), problems, nil
	}

	// The suites: the guest's own report, backends renamed.
	var suites *step
	for i := range g.Steps {
		if g.Steps[i].Name == "suites" {
			suites = &g.Steps[i]
		}
	}
	rep := filepath.Join(guestDir, "suites", reports.JSONFile)
	f, err := os.Open(rep)
	if err != nil {
		why := err.Error()
		if suites != nil {
			why = fmt.Sprintf("kvmspec run exited %d: %s (log: %s)", suites.RC, lastLine(filepath.Join(guestDir, "suites.txt")), filepath.Join(guestDir, "suites.txt"))
		}
		problems = append(problems, "no suite report from the guest: "+why)
		return b.String(), problems, nil
	}
	r, err := reports.ReadJSON(io.LimitReader(f, maxResults))
	f.Close()
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", rep, err))
		return b.String(), problems, nil
	}
	r = r.OnPlatform(platform)
	r.Meta.ReportDir = out
	if err := reports.WriteDir(out, r); err != nil {
		return "", nil, err
	}
	c := r.Counts()
	fmt.Fprintf(&b, "  suites: %d testcases: %d passed, %d failed, %d skipped, %d known deviations", c.Total, c.Passed, c.Failed, c.Skipped, c.Deviations)
	if suites != nil && suites.seconds() > 0 {
		fmt.Fprintf(&b, "; %.1f testcases/s", float64(c.Total)/suites.seconds())
	}
	b.WriteString("\n")
	for _, be := range r.Meta.Backends {
		var n, ran int
		var d time.Duration
		for _, k := range r.Cases {
			if k.Backend == be {
				n++
				d += k.Duration
				if k.State != reports.StateSkipped {
					ran++
				}
			}
		}
		fmt.Fprintf(&b, "    %-10s %4d testcases, %4d run, %6.1f s", be, n, ran, d.Seconds())
		if d > 0 && ran > 0 {
			fmt.Fprintf(&b, ", %.1f run/s", float64(ran)/d.Seconds())
		}
		b.WriteString("\n")
	}
	if r.Incomplete != "" {
		problems = append(problems, "the guest's suite run did not finish: "+r.Incomplete)
	}
	if c.Failed > 0 || len(r.Problems) > 0 {
		var names []string
		for _, k := range r.Cases {
			if k.State.Failed() {
				names = append(names, reports.CaseKey(k.Backend, k.ID))
			}
		}
		problems = append(problems, fmt.Sprintf("%d arm64 testcases failed: %s", c.Failed, strings.Join(first(names, 10), "; ")))
		problems = append(problems, r.Problems...)
	}
	if suites != nil && suites.RC != 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("kvmspec run in the guest exited %d (log: %s)", suites.RC, filepath.Join(guestDir, "suites.txt")))
	}
	return b.String(), problems, nil
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// untar unpacks the gzipped tar in into dir: regular files and
// directories only, no path outside dir, at most maxResults bytes.
func untar(in, dir string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w (the guest sent nothing, or not a gzipped tar)", in, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w (cut short: did the guest finish sending?)", in, err)
		}
		name := filepath.Clean(h.Name)
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("%s: %q leaves the results directory", in, h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += h.Size
			if total > maxResults {
				return fmt.Errorf("%s: more than %d MiB of results", in, maxResults>>20)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			w, err := os.Create(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, io.LimitReader(tr, h.Size))
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %s: %w", in, h.Name, err)
			}
		}
	}
}

// readGuest reads guest.txt and steps.txt.
func readGuest(dir string) (guestResult, error) {
	var g guestResult
	data, err := os.ReadFile(filepath.Join(dir, "guest.txt"))
	if err != nil {
		return g, fmt.Errorf("results from the guest: %w", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "boot":
			g.Boot, _ = strconv.ParseFloat(v, 64)
		case "done":
			g.Done, _ = strconv.ParseFloat(v, 64)
		case "kernel":
			g.Kernel = v
		case "kvm":
			g.KVM = v
		case "suites":
			g.SuitesOff = v == "off"
		}
	}
	sf, err := os.Open(filepath.Join(dir, "steps.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return g, nil
	}
	if err != nil {
		return g, err
	}
	defer sf.Close()
	sc := bufio.NewScanner(sf)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			return g, fmt.Errorf("steps.txt: bad line %q", sc.Text())
		}
		rc, err1 := strconv.Atoi(fs[1])
		t0, err2 := strconv.ParseFloat(fs[2], 64)
		t1, err3 := strconv.ParseFloat(fs[3], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return g, fmt.Errorf("steps.txt: bad line %q: %w", sc.Text(), err)
		}
		g.Steps = append(g.Steps, step{Name: fs[0], RC: rc, Start: t0, End: t1})
	}
	return g, sc.Err()
}

// unitReport parses the unit-<name> logs (go test -v output of the
// test binaries) into one report, packages named "<platform>/<name>".
func unitReport(dir string, g guestResult, platform string) (gtr.Report, error) {
	var all gtr.Report
	for _, s := range g.Steps {
		name, ok := strings.CutPrefix(s.Name, "unit-")
		if !ok {
			continue
		}
		f, err := os.Open(filepath.Join(dir, s.Name+".txt"))
		if err != nil {
			return all, err
		}
		r, err := gotest.NewParser(gotest.PackageName(platform + "/" + name)).Parse(f)
		f.Close()
		if err != nil {
			return all, fmt.Errorf("%s.txt: %w", s.Name, err)
		}
		for _, p := range r.Packages {
			p.Name = platform + "/" + name
			if p.Duration == 0 {
				p.Duration = durationOf(s)
			}
			if s.RC != 0 && !hasFailure(p) {
				// A binary that died (timeout, crash) after its last
				// verdict line: the package still fails.
				p.RunError = gtr.Error{Name: p.Name, Output: []string{fmt.Sprintf("test binary exited %d", s.RC)}}
			}
			all.Packages = append(all.Packages, p)
		}
	}
	sort.Slice(all.Packages, func(i, j int) bool { return all.Packages[i].Name < all.Packages[j].Name })
	return all, nil
}

func hasFailure(p gtr.Package) bool {
	for _, t := range p.Tests {
		if t.Result == gtr.Fail {
			return true
		}
	}
	return false
}

var benchLine = regexp.MustCompile(`^Benchmark\S+\s+\d+\s+.*ns/op`)

// benchLines returns the benchmark results of the bench-<name> logs.
func benchLines(dir string, g guestResult) []string {
	var out []string
	for _, s := range g.Steps {
		if !strings.HasPrefix(s.Name, "bench-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, s.Name+".txt"))
		if err != nil {
			continue
		}
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			switch {
			case benchLine.MatchString(l):
			case strings.Contains(l, "--- SKIP"):
				// A benchmark's skip reason comes before its SKIP line.
				if i > 0 && strings.HasPrefix(lines[i-1], " ") {
					l += ": " + strings.TrimSpace(lines[i-1])
				}
			default:
				continue
			}
			out = append(out, strings.TrimPrefix(s.Name, "bench-")+": "+strings.Join(strings.Fields(l), " "))
		}
	}
	return out
}

// memslotBench gathers the benchmark lines of the memslot-go-<n> and
// memslot-c-<n> steps (make bench-arm64: BenchmarkUpdate/kvm of
// suites/memslot and tools/refbench/memslot.c, one slot count per step)
// into out/memslot-go.txt and out/memslot-c.txt, in step order, the
// inputs of tools/refbench/compare-memslot.sh. It returns the lines, each
// prefixed with its language; nothing is written when no such step ran.
func memslotBench(dir string, g guestResult, out string) ([]string, error) {
	var lines []string
	files := map[string]*strings.Builder{}
	for _, s := range g.Steps {
		var lang string
		switch {
		case strings.HasPrefix(s.Name, "memslot-go-"):
			lang = "go"
		case strings.HasPrefix(s.Name, "memslot-c-"):
			lang = "c"
		default:
			continue
		}
		if files[lang] == nil {
			files[lang] = &strings.Builder{}
		}
		data, err := os.ReadFile(filepath.Join(dir, s.Name+".txt"))
		if err != nil {
			continue // the step's problem is already its exit status
		}
		for _, l := range strings.Split(string(data), "\n") {
			if !benchLine.MatchString(l) || !strings.HasPrefix(l, "BenchmarkUpdate") {
				continue
			}
			files[lang].WriteString(l + "\n")
			lines = append(lines, "memslot "+lang+": "+strings.Join(strings.Fields(l), " "))
		}
	}
	for _, lang := range []string{"go", "c"} {
		if files[lang] == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, "memslot-"+lang+".txt"), []byte(files[lang].String()), 0o644); err != nil {
			return nil, err
		}
	}
	return lines, nil
}

func durationOf(s step) time.Duration { return time.Duration(s.seconds() * float64(time.Second)) }

// lastLine is the last non-empty line of a log, what a failed command
// most often says why in.
func lastLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
