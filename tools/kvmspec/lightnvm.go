package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/kvmspec/kvmspec/fixtures"
	"github.com/kvmspec/kvmspec/harness/lightnvm"
)

// lightnvmCmd is `kvmspec lightnvm sysfs`: the OCSSD device model's tool
// that needs no suite run.
var lightnvmCmd = &command{
	name: "lightnvm", args: "sysfs --geometry FILE --out DIR",
	summary: "write an Open-Channel SSD geometry's sysfs tree (no suite run)",
	description: `Writes the attribute group a Linux 4.20-5.14 host showed for an OCSSD
(DIR/lightnvm/<attribute>, the kernel's names and print formats, OCSSD 1.2
or 2.0) for the geometry in FILE: a JSON file in the sysfs attribute names
(see fixtures/lightnvm and docs/lightnvm.md), or fixture:NAME for one
shipped in the binary (fixture:small-2.0, fixture:realistic-2.0,
fixture:small-1.2, fixture:femu-1.2).`,
	exits: []string{
		"0  tree written",
		"1  the geometry could not be read or is invalid, or DIR is not writable",
		"2  bad usage",
	},
	flags: func(fs *flag.FlagSet) any {
		f := &lightnvmFlags{}
		fs.StringVar(&f.geometry, "geometry", "", "geometry JSON file, or fixture:NAME")
		fs.StringVar(&f.out, "out", "", "directory to write lightnvm/ into")
		return f
	},
	run: runLightNVM,
}

type lightnvmFlags struct{ geometry, out string }

func runLightNVM(c *command, state any, pos []string, stdout, stderr io.Writer) int {
	f := state.(*lightnvmFlags)
	if len(pos) != 1 || pos[0] != "sysfs" || f.geometry == "" || f.out == "" {
		fmt.Fprintf(stderr, "kvmspec lightnvm: want: sysfs --geometry FILE --out DIR (see kvmspec help lightnvm)\n")
		return exitUsage
	}
	g, err := loadGeometry(f.geometry)
	if err != nil {
		fmt.Fprintf(stderr, "kvmspec lightnvm sysfs: %v\n", err)
		return exitFailed
	}
	dir, err := lightnvm.WriteSysfs(f.out, g)
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
