package reports

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Report file names inside a report directory.
const (
	JUnitFile = "junit.xml"
	JSONFile  = "report.json"
	// LockFile is held (flock) by the run writing the directory and names
	// its pid, so a second run into the same directory is refused with
	// a message that says by whom.
	LockFile = ".kvmspec.lock"
)

// tmpPrefix starts the names of the temporaries a write renames into
// place; OpenDir removes any a killed run left behind.
const tmpPrefix = ".kvmspec-tmp-"

// Dir is a report directory held by one run from OpenDir to Close. While
// it is held no other run can write it, and until Write replaces them its
// junit.xml, report.ktap and report.json say the run is incomplete.
type Dir struct {
	path string
	lock *os.File
}

// Path is the directory's path as given to OpenDir.
func (d *Dir) Path() string { return d.path }

// ErrDirBusy is wrapped by OpenDir's error when another run holds the
// directory.
var ErrDirBusy = errors.New("report directory in use by another run")

// OpenDir prepares dir for a run described by m, before any spec runs: it
// creates the directory, proves it writable, takes its lock (refusing a
// directory another run holds), removes temporaries a killed run left, and
// replaces junit.xml, report.ktap and report.json by an "incomplete"
// report, so that a run that never gets to Write (SIGKILL, os.Exit in a
// spec, a crash) leaves files that say so rather than the previous run's
// results.
func OpenDir(dir string, m Meta) (*Dir, error) {
	if strings.TrimSpace(dir) == "" {
		return nil, errors.New("report dir: empty path: name a directory")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report dir: %w", err)
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("report dir: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("report dir %s: not a directory", dir)
	}
	lock, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("report dir %s: not writable: %w", dir, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := io.ReadAll(io.LimitReader(lock, 200))
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "unknown pid"
			}
			return nil, fmt.Errorf("report dir %s: %w (%s): wait for it or give another --report-dir", dir, ErrDirBusy, who)
		}
		return nil, fmt.Errorf("report dir %s: lock: %w", dir, err)
	}
	d := &Dir{path: dir, lock: lock}
	holder := fmt.Sprintf("pid %d, started %s", os.Getpid(), m.Started.UTC().Format(time.RFC3339))
	if err := writeLockHolder(lock, holder); err != nil {
		d.Close()
		return nil, fmt.Errorf("report dir %s: not writable: %w", dir, err)
	}
	if err := d.cleanTemporaries(); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.Write(IncompleteRun(m, "")); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func writeLockHolder(f *os.File, s string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(s+"\n"), 0)
	return err
}

// cleanTemporaries removes what a run killed in the middle of Write left.
// Only runs holding the lock write temporaries, so none is in use.
func (d *Dir) cleanTemporaries() error {
	stray, err := filepath.Glob(filepath.Join(d.path, tmpPrefix+"*"))
	if err != nil {
		return fmt.Errorf("report dir %s: %w", d.path, err)
	}
	for _, f := range stray {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("report dir %s: remove stray temporary: %w", d.path, err)
		}
	}
	return nil
}

// IncompleteReason is the message of a report whose run did not finish.
func IncompleteReason(m Meta, why string) string {
	s := fmt.Sprintf("incomplete: the run started at %s (pid %d) did not finish", m.Started.UTC().Format(time.RFC3339), os.Getpid())
	if why != "" {
		s += ": " + why
	} else {
		s += " (killed or crashed); these are not its results"
	}
	return s
}

// IncompleteRun is the report a run leaves while it runs, and the report
// of a run stopped before its specs ran (why says how). It fails in every
// reader: one failing suite case, and Incomplete set.
func IncompleteRun(m Meta, why string) Run {
	msg := IncompleteReason(m, why)
	return Run{
		SchemaVersion: SchemaVersion,
		Meta:          m,
		Incomplete:    msg,
		Cases: []Case{{
			Area: SuiteArea, Name: "[run incomplete]", ID: SuiteArea + "/[run incomplete]",
			State: StateAborted, Message: msg, Failure: msg,
		}},
	}
}

// Write replaces the directory's junit.xml, report.ktap and report.json by
// r's. All are written to temporaries and synced before any is renamed,
// and report.json goes last: a run killed in between leaves junit.xml and
// report.ktap of this run beside this run's "incomplete" report.json,
// never files of two runs.
func (d *Dir) Write(r Run) error {
	if d.lock == nil {
		return fmt.Errorf("report dir %s: written after Close", d.path)
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{{JUnitFile, r.WriteJUnit}, {KTAPFile, r.WriteKTAP}, {JSONFile, r.WriteJSON}}
	var tmps []string
	defer func() {
		for _, t := range tmps {
			os.Remove(t) // gone already when renamed
		}
	}()
	for _, f := range files {
		tmp, err := writeTemp(d.path, f.name, f.write)
		if err != nil {
			return err
		}
		tmps = append(tmps, tmp)
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], filepath.Join(d.path, f.name)); err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(d.path, f.name), err)
		}
	}
	return syncDir(d.path)
}

// Close releases the directory for other runs.
func (d *Dir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close() // closing the descriptor drops the flock
	d.lock = nil
	return err
}

func writeTemp(dir, name string, write func(io.Writer) error) (path string, err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
		}
	}()
	if err := write(f); err != nil {
		return "", err
	}
	// CreateTemp makes the file 0600; reports are for everyone to read.
	if err := f.Chmod(0o644); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes the renames durable, so a power cut cannot bring back the
// files of an earlier run.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync report dir: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync report dir: %w", err)
	}
	return nil
}

// WriteDir writes r into dir as one complete set (OpenDir, Write, Close).
func WriteDir(dir string, r Run) error {
	d, err := OpenDir(dir, r.Meta)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Write(r)
}
