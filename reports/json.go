package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteJSON writes the run as the report.json document described in the
// package documentation.
func (r Run) WriteJSON(w io.Writer) error {
	if r.SchemaVersion == 0 {
		r.SchemaVersion = SchemaVersion
	}
	if r.Cases == nil {
		r.Cases = []Case{} // "cases": [] rather than null, for readers in other languages
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // spec names contain '<' and '&' (e.g. "a < b"); keep them readable
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	return nil
}

// ReadJSON reads a report.json document. It rejects documents without a
// schema_version or with one this package does not know, and cases with an
// unknown state, rather than misread them.
func ReadJSON(rd io.Reader) (Run, error) {
	data, err := io.ReadAll(rd)
	if err != nil {
		return Run{}, fmt.Errorf("report json: %w", err)
	}
	var probe struct {
		SchemaVersion *int             `json:"schema_version"`
		Meta          *json.RawMessage `json:"meta"`
		Cases         *json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return Run{}, fmt.Errorf("report json: %w", describe(data, err))
	}
	switch {
	case probe.SchemaVersion == nil:
		return Run{}, errors.New("report json: no schema_version: not a kvmspec report")
	case *probe.SchemaVersion < 1 || *probe.SchemaVersion > SchemaVersion:
		return Run{}, fmt.Errorf("report json: schema_version %d is not supported (this kvmspec reads versions 1 to %d)", *probe.SchemaVersion, SchemaVersion)
	case probe.Meta == nil || probe.Cases == nil:
		// Another tool's document that happens to have a schema_version
		// must not read as an empty run ("356 removed, no regressions").
		return Run{}, errors.New("report json: no meta or no cases: not a kvmspec report")
	}
	var shape struct {
		Meta  map[string]json.RawMessage `json:"meta"`
		Cases []json.RawMessage          `json:"cases"`
	}
	if err := json.Unmarshal(data, &shape); err != nil {
		return Run{}, fmt.Errorf("report json: not a kvmspec report: %w", err)
	}
	for _, k := range []string{"version", "started"} {
		if _, ok := shape.Meta[k]; !ok {
			return Run{}, fmt.Errorf("report json: meta has no %s: not a kvmspec report", k)
		}
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return Run{}, fmt.Errorf("report json: %w", describe(data, err))
	}
	for i, c := range r.Cases {
		if !c.State.Valid() {
			return Run{}, fmt.Errorf("report json: cases[%d].state: unknown state %q", i, c.State)
		}
	}
	return r, nil
}

// describe adds the line of a syntax error, since report files are long.
func describe(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		line := bytes.Count(data[:max(0, min(int(syn.Offset), len(data)))], []byte{'\n'}) + 1
		return fmt.Errorf("line %d (offset %d): %w", line, syn.Offset, err)
	}
	return err
}
