package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/kvmspec/kvmspec/fixtures"
	"github.com/kvmspec/kvmspec/harness/lightnvm"
)

const lightnvmUsage = `usage: kvmspec lightnvm sysfs --geometry FILE --out DIR

Writes the Open-Channel SSD sysfs attribute group a Linux ≤ 5.14 host
showed for the geometry (DIR/lightnvm/<attribute>, the kernel's names and
formats, OCSSD 1.2 or 2.0). FILE is a geometry JSON file in the sysfs
attribute names, or fixture:NAME for one shipped in the binary
(fixture:small-2.0, fixture:realistic-2.0, fixture:small-1.2, fixture:femu-1.2).
`

// cmdLightNVM is `kvmspec lightnvm`: tools for the OCSSD device model
// that need no suite run.
func cmdLightNVM(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "sysfs" {
		fmt.Fprint(stderr, lightnvmUsage)
		return exitUsage
	}
	fset := flag.NewFlagSet("lightnvm sysfs", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() { fmt.Fprint(stderr, lightnvmUsage) }
	geo := fset.String("geometry", "", "geometry JSON file, or fixture:NAME")
	out := fset.String("out", "", "directory to write lightnvm/ into")
	if err := fset.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *geo == "" || *out == "" || fset.NArg() != 0 {
		fmt.Fprintf(stderr, "kvmspec lightnvm sysfs: --geometry and --out are required\n\n%s", lightnvmUsage)
		return exitUsage
	}
	g, err := loadGeometry(*geo)
	if err != nil {
		fmt.Fprintf(stderr, "kvmspec lightnvm sysfs: %v\n", err)
		return exitFailed
	}
	dir, err := lightnvm.WriteSysfs(*out, g)
	if err != nil {
		fmt.Fprintf(stderr, "kvmspec lightnvm sysfs: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "wrote OCSSD %s attributes (%d) to %s\n", g.Version, len(g.SysfsAttributes()), dir)
	return exitOK
}

// loadGeometry reads a geometry file, or an embedded fixture.
func loadGeometry(name string) (lightnvm.Geometry, error) {
	fx, ok := strings.CutPrefix(name, "fixture:")
	if !ok {
		return lightnvm.LoadGeometry(name)
	}
	b, err := fs.ReadFile(fixtures.LightNVM, "lightnvm/"+fx+".json")
	if err != nil {
		return lightnvm.Geometry{}, fmt.Errorf("fixture %q: %w", fx, err)
	}
	g, err := lightnvm.ParseGeometry(b)
	if err != nil {
		return lightnvm.Geometry{}, fmt.Errorf("fixture %q: %w", fx, err)
	}
	return g, nil
}
