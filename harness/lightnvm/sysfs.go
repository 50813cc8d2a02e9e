package lightnvm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SysfsGroup is the attribute group's directory name under the block
// device (/sys/block/<ns>/lightnvm).
const SysfsGroup = "lightnvm"

// Attribute is one sysfs file: its name and its content as the kernel's
// show function prints it (drivers/nvme/host/lightnvm.c, 4.20-5.14).
type Attribute struct {
	Name, Value string
}

func u(v uint64) string    { return strconv.FormatUint(v, 10) + "\n" }
func hex8(v uint32) string { return fmt.Sprintf("0x%08x\n", v) }

// SysfsAttributes lists the group's attributes for g's version, in the
// kernel's order (nvm_dev_attrs_12 / nvm_dev_attrs_20).
func (g Geometry) SysfsAttributes() []Attribute {
	if g.Version == V12 {
		f := g.PPAFormat()
		ppaf := fmt.Sprintf("0x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x\n",
			f.ChOff, f.ChLen, f.LunOff, f.LunLen, f.PlnOff, f.PlnLen, f.BlkOff, f.BlkLen, f.PgOff, f.PgLen, f.SecOff, f.SecLen)
		return []Attribute{
			{"version", "1\n"}, // 1.2 prints the major version only
			{"capabilities", u(uint64(g.Capabilities))},
			{"vendor_opcode", u(uint64(g.VendorOpcode))},
			{"device_mode", u(uint64(g.DeviceMode))},
			{"media_manager", "gennvm\n"},
			{"ppa_format", ppaf},
			{"media_type", u(uint64(g.MediaType))},
			{"flash_media_type", u(uint64(g.FlashMediaType))},
			{"num_channels", u(uint64(g.Channels))},
			{"num_luns", u(uint64(g.LUNs))},
			{"num_planes", u(uint64(g.Planes))},
			{"num_blocks", u(uint64(g.Blocks))},
			{"num_pages", u(uint64(g.Pages))},
			{"page_size", u(uint64(g.PageSize))},
			{"hw_sector_size", u(uint64(g.SectorSize))},
			{"oob_sector_size", u(uint64(g.OOBSize))},
			{"read_typ", u(uint64(g.ReadTyp))},
			{"read_max", u(uint64(g.ReadMax))},
			{"prog_typ", u(uint64(g.ProgTyp))},
			{"prog_max", u(uint64(g.ProgMax))},
			{"erase_typ", u(uint64(g.EraseTyp))},
			{"erase_max", u(uint64(g.EraseMax))},
			{"multiplane_modes", hex8(g.MPOS)},
			{"media_capabilities", hex8(g.MCCAP)},
			{"max_phys_secs", u(MaxVectorLBAs)},
		}
	}
	return []Attribute{
		{"version", "2.0\n"},
		// The kernel's 2.0 setup never fills geo->cap: it prints 0.
		{"capabilities", u(uint64(g.Capabilities))},
		{"groups", u(uint64(g.Groups))},
		{"punits", u(uint64(g.PUnits))},
		{"chunks", u(uint64(g.Chunks))},
		{"clba", u(uint64(g.CLBA))},
		{"ws_min", u(uint64(g.WSMin))},
		{"ws_opt", u(uint64(g.WSOpt))},
		{"maxoc", u(uint64(g.MaxOC))},
		{"maxocpu", u(uint64(g.MaxOCPU))},
		{"mw_cunits", u(uint64(g.MWCunit))},
		{"read_typ", u(uint64(g.ReadTyp))},
		{"read_max", u(uint64(g.ReadMax))},
		{"write_typ", u(uint64(g.WriteTyp))},
		{"write_max", u(uint64(g.WriteMax))},
		{"reset_typ", u(uint64(g.ResetTyp))},
		{"reset_max", u(uint64(g.ResetMax))},
	}
}

// WriteSysfs writes g's attribute group as real files under
// dir/lightnvm/, one file per attribute with the kernel's content. It
// returns the group directory. Any failure names the path.
func WriteSysfs(dir string, g Geometry) (string, error) {
	g, err := g.Normalize()
	if err != nil {
		return "", fmt.Errorf("lightnvm sysfs: geometry: %w", err)
	}
	grp := filepath.Join(dir, SysfsGroup)
	if err := os.MkdirAll(grp, 0o755); err != nil {
		return "", fmt.Errorf("lightnvm sysfs: create %s: %w", grp, err)
	}
	for _, a := range g.SysfsAttributes() {
		p := filepath.Join(grp, a.Name)
		if err := os.WriteFile(p, []byte(a.Value), 0o644); err != nil {
			return "", fmt.Errorf("lightnvm sysfs: write %s: %w", p, err)
		}
	}
	return grp, nil
}

// ReadSysfs reads an attribute group (dir/lightnvm/ as WriteSysfs or a
// ≤ 5.14 kernel wrote it) back into a geometry, checking each file's
// format; a missing or malformed file is an error naming it.
func ReadSysfs(dir string) (Geometry, error) {
	grp := filepath.Join(dir, SysfsGroup)
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(grp, name))
		if err != nil {
			return "", fmt.Errorf("lightnvm sysfs: %w", err)
		}
		s := string(b)
		if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
			return "", fmt.Errorf("lightnvm sysfs: %s: %q is not one newline-terminated line", filepath.Join(grp, name), s)
		}
		return strings.TrimSuffix(s, "\n"), nil
	}
	ver, err := read("version")
	if err != nil {
		return Geometry{}, err
	}
	var g Geometry
	var errs []error
	num := func(name string, dst any) {
		s, err := read(name)
		if err != nil {
			errs = append(errs, err)
			return
		}
		base := 10
		if strings.HasPrefix(s, "0x") {
			s, base = s[2:], 16
		}
		v, err := strconv.ParseUint(s, base, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("lightnvm sysfs: %s: %w", filepath.Join(grp, name), err))
			return
		}
		switch p := dst.(type) {
		case *int:
			*p = int(v)
		case *uint32:
			*p = uint32(v)
		case *uint8:
			*p = uint8(v)
		}
	}
	switch ver {
	case "1":
		g.Version = V12
		for _, f := range []struct {
			name string
			dst  any
		}{{"capabilities", &g.Capabilities}, {"vendor_opcode", &g.VendorOpcode}, {"device_mode", &g.DeviceMode},
			{"media_type", &g.MediaType}, {"flash_media_type", &g.FlashMediaType}, {"num_channels", &g.Channels},
			{"num_luns", &g.LUNs}, {"num_planes", &g.Planes}, {"num_blocks", &g.Blocks}, {"num_pages", &g.Pages},
			{"page_size", &g.PageSize}, {"hw_sector_size", &g.SectorSize}, {"oob_sector_size", &g.OOBSize},
			{"read_typ", &g.ReadTyp}, {"read_max", &g.ReadMax}, {"prog_typ", &g.ProgTyp}, {"prog_max", &g.ProgMax},
			{"erase_typ", &g.EraseTyp}, {"erase_max", &g.EraseMax}, {"multiplane_modes", &g.MPOS}, {"media_capabilities", &g.MCCAP}} {
			num(f.name, f.dst)
		}
		if mm, err := read("media_manager"); err != nil || mm != "gennvm" {
			errs = append(errs, fmt.Errorf("lightnvm sysfs: media_manager %q, want gennvm (%v)", mm, err))
		}
	case "2.0":
		g.Version = V20 // 2.0 exports no sector size: it stays 0
		for _, f := range []struct {
			name string
			dst  any
		}{{"capabilities", &g.Capabilities}, {"groups", &g.Groups}, {"punits", &g.PUnits}, {"chunks", &g.Chunks}, {"clba", &g.CLBA},
			{"ws_min", &g.WSMin}, {"ws_opt", &g.WSOpt}, {"maxoc", &g.MaxOC}, {"maxocpu", &g.MaxOCPU}, {"mw_cunits", &g.MWCunit},
			{"read_typ", &g.ReadTyp}, {"read_max", &g.ReadMax}, {"write_typ", &g.WriteTyp}, {"write_max", &g.WriteMax},
			{"reset_typ", &g.ResetTyp}, {"reset_max", &g.ResetMax}} {
			num(f.name, f.dst)
		}
	default:
		return Geometry{}, fmt.Errorf("lightnvm sysfs: %s: version %q, want 1 or 2.0", filepath.Join(grp, "version"), ver)
	}
	if err := errors.Join(errs...); err != nil {
		return Geometry{}, err
	}
	return g, nil
}
