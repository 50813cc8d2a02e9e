package reports

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readRun(t *testing.T, dir string) Run {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A run that dies after OpenDir leaves reports that say it is incomplete,
// not the previous run's green ones.
func TestOpenDirMarksIncomplete(t *testing.T) {
	dir := t.TempDir()
	green := mixedRun()
	if err := WriteDir(dir, green); err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	d, err := OpenDir(dir, Meta{Version: "test", Seed: 7, Started: started})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := readRun(t, dir)
	if !strings.Contains(r.Incomplete, "incomplete: the run started at 2026-12-05T09:00:00Z") || r.OK() {
		t.Fatalf("report.json while running: incomplete %q, OK %v", r.Incomplete, r.OK())
	}
	if c := r.Counts(); c.Failed != 1 || c.Total != 1 {
		t.Errorf("incomplete report counts %+v, want one failing case", c)
	}
	junit, err := os.ReadFile(filepath.Join(dir, JUnitFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(junit), `failures="1"`) || !strings.Contains(string(junit), "incomplete: the run started at") {
		t.Errorf("junit.xml while running does not fail as incomplete:\n%s", junit)
	}
	green.Meta.Seed = 7
	if err := d.Write(green); err != nil {
		t.Fatal(err)
	}
	if r := readRun(t, dir); r.Incomplete != "" || r.Meta.Seed != 7 {
		t.Errorf("after Write: incomplete %q, seed %d", r.Incomplete, r.Meta.Seed)
	}
}

func TestOpenDirRefusesSecondRun(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDir(dir, Meta{Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenDir(dir, Meta{Started: time.Now()})
	if !errors.Is(err, ErrDirBusy) || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("second OpenDir: %v, want ErrDirBusy naming the holder", err)
	}
	d.Close()
	d2, err := OpenDir(dir, Meta{Started: time.Now()})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	d2.Close()
	if err := d2.Write(Run{}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestOpenDirCleansTemporaries(t *testing.T) {
	dir := t.TempDir()
	stray := filepath.Join(dir, tmpPrefix+"report.json-123")
	other := filepath.Join(dir, "notes.txt")
	for _, f := range []string{stray, other} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := OpenDir(dir, Meta{Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stray temporary kept: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file of the user's removed: %v", err)
	}
}

func TestOpenDirRefusesBadDirs(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, dir, want string }{
		{"empty", "", "empty path"},
		{"blank", "  ", "empty path"},
		{"a file", file, "not a directory"},
		{"under a file", filepath.Join(file, "out"), "not a directory"},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(root, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ name, dir, want string }{"read-only", ro, "not writable"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := OpenDir(c.dir, Meta{})
			if err == nil {
				d.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want %q", err, c.want)
			}
		})
	}
}
